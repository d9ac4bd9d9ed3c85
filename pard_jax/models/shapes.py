"""The shapes of published models, by HF id: their config.json, so a program can be compiled without weights.

`hf_config(model_id)` returns the HF config.json mapping of a model this table knows (the fields that fix
parameter shapes and RoPE, and the BOS/EOS ids), `model_config(model_id)` the `ModelConfig` built from it.
Ids are case-insensitive, and the part after the slash is an alias ("llama-3.2-1b-instruct"). A published PARD
draft has the shapes of the model it was adapted from (its vocabulary too, so every mask id of that family
fits). Values are from each model's config.json on the Hugging Face Hub.
"""

from __future__ import annotations

import copy
from typing import Any

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig

_LLAMA3 = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
           "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
           "attention_bias": False, "mlp_bias": False, "bos_token_id": 128000}
_LLAMA3_INSTRUCT_EOS = [128001, 128008, 128009]


def _llama3_scaling(factor: float) -> dict[str, Any]:
    return {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}


_LLAMA_3_1_8B = {**_LLAMA3, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                 "rope_scaling": _llama3_scaling(8.0), "tie_word_embeddings": False}
_LLAMA_3_2_1B = {**_LLAMA3, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                 "rope_scaling": _llama3_scaling(32.0), "tie_word_embeddings": True}
_LLAMA_3_3_70B = {**_LLAMA3, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                  "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128,
                  "rope_scaling": _llama3_scaling(8.0), "tie_word_embeddings": False,
                  "eos_token_id": _LLAMA3_INSTRUCT_EOS}

_QWEN = {"rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "bos_token_id": 151643, "eos_token_id": 151645}
_QWEN2 = {**_QWEN, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "max_position_embeddings": 32768}
_QWEN3 = {**_QWEN, "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "max_position_embeddings": 40960,
          "vocab_size": 151936, "head_dim": 128, "attention_bias": False}

_QWEN2_5_7B = {**_QWEN2, "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
               "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "head_dim": 128,
               "tie_word_embeddings": False}
_QWEN2_5_0_5B = {**_QWEN2, "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
                 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "head_dim": 64,
                 "tie_word_embeddings": True}
_QWEN3_8B = {**_QWEN3, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
             "num_attention_heads": 32, "num_key_value_heads": 8, "tie_word_embeddings": False}
_QWEN3_0_6B = {**_QWEN3, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
               "num_attention_heads": 16, "num_key_value_heads": 8, "tie_word_embeddings": True}

_SMOLLM2_135M = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
                 "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                 "num_key_value_heads": 3, "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                 "tie_word_embeddings": True, "max_position_embeddings": 8192, "bos_token_id": 1, "eos_token_id": 2}

# The published PARD-2 drafts: PARD-2's official training configs (github.com/AMD-AGI/PARD,
# config/train/example_pard2_{llama3,qwen3}.yaml) adapt Llama-3.2-1B-Instruct for Llama-3.1-8B-Instruct and
# Qwen3-0.6B for Qwen3-8B, reading 4 target hidden states ([-1, -8, -16, -24]) of 4096 each, with those mask ids;
# the shapes below follow from those configs (not read from the drafts' own config.json on the Hub).
_PARD2 = {"spd_type": "pard2", "pard2": True, "pard2_target_layers": [-1, -8, -16, -24], "pard2_scale": 0.02,
          "pard2_proj_bias": False, "pard2_target_dim": 4 * 4096}

SHAPES: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.1-8B": {**_LLAMA_3_1_8B, "eos_token_id": 128001},
    "meta-llama/Llama-3.1-8B-Instruct": {**_LLAMA_3_1_8B, "eos_token_id": _LLAMA3_INSTRUCT_EOS},
    "meta-llama/Llama-3.3-70B-Instruct": _LLAMA_3_3_70B,
    "meta-llama/Llama-3.2-1B": {**_LLAMA_3_2_1B, "eos_token_id": 128001},
    "meta-llama/Llama-3.2-1B-Instruct": {**_LLAMA_3_2_1B, "eos_token_id": _LLAMA3_INSTRUCT_EOS},
    "amd/PARD-Llama-3.2-1B": {**_LLAMA_3_2_1B, "eos_token_id": _LLAMA3_INSTRUCT_EOS},
    "Qwen/Qwen2.5-7B-Instruct": _QWEN2_5_7B,
    "Qwen/Qwen2.5-0.5B-Instruct": _QWEN2_5_0_5B,
    "amd/PARD-Qwen2.5-0.5B": _QWEN2_5_0_5B,
    "Qwen/Qwen3-8B": _QWEN3_8B,
    "Qwen/Qwen3-0.6B": _QWEN3_0_6B,
    "amd/PARD-Qwen3-0.6B": _QWEN3_0_6B,
    "HuggingFaceTB/SmolLM2-135M-Instruct": _SMOLLM2_135M,
    "amd/PARD2-Llama-3.1-8B": {**_LLAMA_3_2_1B, "eos_token_id": _LLAMA3_INSTRUCT_EOS, "pard_token": 128020, **_PARD2},
    "amd/PARD2-Qwen3-8B": {**_QWEN3_0_6B, "pard_token": 151670, **_PARD2},
}

_BY_KEY = {key: model_id for model_id in SHAPES
           for key in (model_id.lower(), model_id.split("/", 1)[1].lower())}


def known_ids() -> tuple[str, ...]:
    return tuple(SHAPES)


def hf_config(model_id: str) -> dict[str, Any] | None:
    """The config.json mapping of a known model id or alias (case-insensitive), or None."""
    found = _BY_KEY.get(str(model_id).strip().lower())
    return None if found is None else copy.deepcopy(SHAPES[found])


def model_config(model_id: str) -> ModelConfig:
    """The ModelConfig of a known model id or alias; an unknown one is a UserError naming the known ids."""
    d = hf_config(model_id)
    if d is None:
        raise UserError(f"the shape table has no model {model_id!r}; it has {', '.join(known_ids())}")
    return ModelConfig.from_hf_dict(d)
