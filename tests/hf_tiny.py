"""Tiny random HF models (and GGUF files made from them), built locally from transformers config classes.

Weights are drawn so that activations stay O(1) (norm scales and biases random too), which makes a 1e-4
logits comparison meaningful: swapping two norms or forgetting a transpose changes logits by O(1).
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import torch
import transformers

from pard_jax.weights.gguf import gguf_to_hf_name
from tests.tiny_models import forward

TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)

# name -> (config class, extra kwargs)
KINDS = {
    "llama": (transformers.LlamaConfig, dict(tie_word_embeddings=False)),
    "llama-tied": (transformers.LlamaConfig, dict(tie_word_embeddings=True)),
    "llama-bias": (transformers.LlamaConfig, dict(attention_bias=True, mlp_bias=True, num_key_value_heads=4)),
    "llama3-rope": (transformers.LlamaConfig, dict(
        rope_theta=10000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32})),
    "qwen2": (transformers.Qwen2Config, dict(tie_word_embeddings=False, rope_theta=1e6)),
    "qwen3": (transformers.Qwen3Config, dict(head_dim=24, tie_word_embeddings=True, rope_theta=1e6)),
}


def hf_config(kind: str, **overrides) -> transformers.PretrainedConfig:
    cls, extra = KINDS[kind]
    kw = {**TINY, **extra, **overrides}
    if "rope_scaling" in kw and "rope_parameters" not in kw:  # transformers 5 name
        kw["rope_parameters"] = {"rope_theta": kw.get("rope_theta", 10000.0), **kw.pop("rope_scaling")}
    return cls(**kw)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # Linear [out, in]
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[1]))
    return model


def make_model(cfg: transformers.PretrainedConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return randomize_(model, seed).eval()


def make_tiny(kind: str, out_dir: str, seed: int = 0, max_shard_size: str | None = None, **overrides):
    """Build a tiny random model of `kind`, save it to `out_dir`; returns the torch model."""
    model = make_model(hf_config(kind, **overrides), seed)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, **kw)
    return model


def torch_logits(model: torch.nn.Module, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.float().numpy()


def jax_logits(params, cfg, tokens: np.ndarray) -> np.ndarray:
    tokens = jnp.asarray(tokens, jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    return np.asarray(forward(params, cfg, tokens, positions))


def sample_tokens(vocab: int, batch: int = 2, length: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, length), dtype=np.int64)


PARD2_SHAPE = dict(hidden_size=48, intermediate_size=96, num_attention_heads=6, num_key_value_heads=3,
                   vocab_size=132)
PARD2_MASK_ID = 130
PARD2_LAYERS = [-1, 1]


def make_pard2_pair(root) -> dict:
    """A tiny target (with a tokenizer) and an official-format PARD-2 draft for it, what AMD-AGI/PARD's pard2
    conversion writes (config.json spd_type pard2, warp_model.bin by torch.save), under `root`: the two
    directories, the draft's torch model and its warp tensors."""
    import json

    torch.set_num_threads(1)
    target, draft = os.path.join(root, "target"), os.path.join(root, "draft")
    make_tiny("llama", target, seed=1, num_hidden_layers=2, **PARD2_SHAPE)
    make_tiny_tokenizer(120).save_pretrained(target)
    model = make_tiny("llama", draft, seed=2, num_hidden_layers=1, **PARD2_SHAPE)
    with open(os.path.join(draft, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(pard_token=PARD2_MASK_ID, spd_type="pard2", pard2=True, pard2_target_layers=PARD2_LAYERS,
               pard2_target_dim=2 * PARD2_SHAPE["hidden_size"], pard2_scale=0.5, pard2_proj_bias=True)
    with open(os.path.join(draft, "config.json"), "w") as f:
        json.dump(cfg, f)
    g = torch.Generator().manual_seed(3)
    warp = {"target_proj.weight": torch.randn(48, 96, generator=g) / 4, "target_proj.bias": torch.randn(48, generator=g)}
    torch.save(warp, os.path.join(draft, "warp_model.bin"))
    return dict(target=target, draft=draft, model=model, warp={k: v.numpy() for k, v in warp.items()}, root=root)


def make_tiny_tokenizer(vocab: int = TINY["vocab_size"]):
    """A word-level tokenizer over `vocab` ids with a chat template (for export round trips)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(vocab - 3)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>")
    fast.chat_template = "{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}" \
                         "{% if add_generation_prompt %}w0 {% endif %}"
    return fast


# ----------------------------------------------------------------------------------------------- GGUF writing


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's q/k permutation (HF half-rotation -> interleaved RoPE rows)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)



def _hf_to_gguf_name(hf: str) -> str:
    """Invert pard_jax.weights.gguf's table by probing it (keeps the two tables from drifting apart)."""
    import re

    m = re.fullmatch(r"model\.layers\.(\d+)\.(.*)", hf)
    i = m.group(1) if m else None
    from pard_jax.weights.gguf import GGUF_TO_HF

    for g, h in GGUF_TO_HF:
        if (h.format(i=i) if i is not None else h) == hf:
            name = g.format(i=i) if i is not None else g
            assert gguf_to_hf_name(name) == hf
            return name
    raise KeyError(hf)


def write_tiny_gguf(model: torch.nn.Module, path: str, arch: str) -> None:
    """Write `model` (float32 tensors) as a GGUF file the way llama.cpp's converter would."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)
    w.add_rope_freq_base(float(theta))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    for hf, a in sd.items():
        if arch == "llama" and ".q_proj." in hf:
            a = _permute(a, cfg.num_attention_heads)
        elif arch == "llama" and ".k_proj." in hf:
            a = _permute(a, cfg.num_key_value_heads)
        w.add_tensor(_hf_to_gguf_name(hf), np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert os.path.getsize(path) > 0
