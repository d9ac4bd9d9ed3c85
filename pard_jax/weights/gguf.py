"""GGUF files read as if they were HF checkpoints: the model config from the metadata, tensors dequantized
and renamed to HF names.

`read_gguf` returns the HF-equivalent `ModelConfig` and a lazy `{hf tensor name: array}` view, so
`weights.convert` converts it with the same table as a safetensors directory. Two things differ from HF:
tensor names (the `GGUF_TO_HF` table) and the rows of `attn_q` / `attn_k` of llama-architecture files, which
llama.cpp's converter permutes for its interleaved RoPE layout (undone by `reverse_permute`). Reading costs
seconds, so `weights.sources` caches the converted params (`weights.store`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gguf
import numpy as np

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig, RopeScaling
from pard_jax.models.rope import rope_inv_freq
from pard_jax.weights.lazy import Whole
from pard_jax.weights.table import layer_regex

# GGUF architecture -> HF architecture. Only llama-architecture files have permuted q/k rows.
GGUF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# GGUF tensor name -> HF tensor name ("{i}" is the layer index).
GGUF_TO_HF = (
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
    ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("blk.{i}.attn_q.weight", "model.layers.{i}.self_attn.q_proj.weight"),
    ("blk.{i}.attn_q.bias", "model.layers.{i}.self_attn.q_proj.bias"),
    ("blk.{i}.attn_k.weight", "model.layers.{i}.self_attn.k_proj.weight"),
    ("blk.{i}.attn_k.bias", "model.layers.{i}.self_attn.k_proj.bias"),
    ("blk.{i}.attn_v.weight", "model.layers.{i}.self_attn.v_proj.weight"),
    ("blk.{i}.attn_v.bias", "model.layers.{i}.self_attn.v_proj.bias"),
    ("blk.{i}.attn_output.weight", "model.layers.{i}.self_attn.o_proj.weight"),
    ("blk.{i}.attn_output.bias", "model.layers.{i}.self_attn.o_proj.bias"),
    ("blk.{i}.attn_q_norm.weight", "model.layers.{i}.self_attn.q_norm.weight"),
    ("blk.{i}.attn_k_norm.weight", "model.layers.{i}.self_attn.k_norm.weight"),
    ("blk.{i}.ffn_gate.weight", "model.layers.{i}.mlp.gate_proj.weight"),
    ("blk.{i}.ffn_gate.bias", "model.layers.{i}.mlp.gate_proj.bias"),
    ("blk.{i}.ffn_up.weight", "model.layers.{i}.mlp.up_proj.weight"),
    ("blk.{i}.ffn_up.bias", "model.layers.{i}.mlp.up_proj.bias"),
    ("blk.{i}.ffn_down.weight", "model.layers.{i}.mlp.down_proj.weight"),
    ("blk.{i}.ffn_down.bias", "model.layers.{i}.mlp.down_proj.bias"),
)
_GGUF_RULES = tuple((layer_regex(g), h) for g, h in GGUF_TO_HF)

# Llama 3.1 / 3.2 RoPE scaling, recognised from a file's `rope_freqs.weight` factors.
_LLAMA3_SCALINGS = (RopeScaling(8.0, 1.0, 4.0, 8192), RopeScaling(32.0, 1.0, 4.0, 8192))


def open_gguf(path: str):
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # the gguf package raises ValueError/struct.error/... on foreign or broken files
        raise UserError(f"cannot read {path} as a GGUF file ({type(e).__name__}: {e}); "
                        "pass an intact .gguf file") from e


def _field(reader, key: str, default: Any = None) -> Any:
    f = reader.get_field(key)
    if f is None:
        return default
    return f.contents()


def reverse_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved RoPE pairs -> HF's half-rotation layout).

    llama.cpp: w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2); this is its inverse.
    Works for weights [rows, in] and biases [rows]; `n_head` is the number of heads of that projection.
    """
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_config(reader, path: str) -> ModelConfig:
    """The HF-equivalent ModelConfig from a GGUF file's metadata."""
    arch = _field(reader, "general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise UserError(f"unsupported GGUF architecture {arch!r} in {path}; supported: "
                        f"{', '.join(GGUF_ARCHITECTURES)} (i.e. {', '.join(GGUF_ARCHITECTURES.values())})")

    def need(key):
        v = _field(reader, f"{arch}.{key}")
        if v is None:
            raise UserError(f"the GGUF file {path} lacks the metadata key {arch}.{key}; pass a complete GGUF file")
        return v

    tensors = {t.name: t for t in reader.tensors}
    hidden = int(need("embedding_length"))
    heads = int(need("attention.head_count"))
    kv_heads = _field(reader, f"{arch}.attention.head_count_kv", heads)
    if isinstance(kv_heads, list):  # per-layer lists (hybrid models) are not ours
        raise UserError(f"the GGUF file {path} has per-layer head counts; only uniform decoders are supported")
    head_dim = int(_field(reader, f"{arch}.attention.key_length", 0) or hidden // heads)
    tokens = reader.get_field("tokenizer.ggml.tokens")
    if tokens is not None:
        vocab = len(tokens.data)
    elif _field(reader, f"{arch}.vocab_size") is not None:
        vocab = int(_field(reader, f"{arch}.vocab_size"))
    else:
        vocab = int(tensors["token_embd.weight"].shape[-1])
    theta = float(_field(reader, f"{arch}.rope.freq_base", 10000.0))
    cfg_kw: dict[str, Any] = dict(
        architecture=GGUF_ARCHITECTURES[arch],
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(need("feed_forward_length")),
        num_layers=int(need("block_count")),
        num_heads=heads,
        num_kv_heads=int(kv_heads),
        head_dim=head_dim,
        rms_norm_eps=float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=theta,
        tie_word_embeddings="output.weight" not in tensors,
        qkv_bias=arch == "qwen2" or "blk.0.attn_q.bias" in tensors,
        o_bias="blk.0.attn_output.bias" in tensors,
        mlp_bias="blk.0.ffn_up.bias" in tensors,
        qk_norm=arch == "qwen3",
        max_position_embeddings=int(_field(reader, f"{arch}.context_length", 4096)),
        bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
    )
    eos = [_field(reader, f"tokenizer.ggml.{k}_token_id") for k in ("eos", "eot", "eom")]
    cfg_kw["eos_token_ids"] = tuple(dict.fromkeys(int(e) for e in eos if e is not None))
    cfg = ModelConfig(**cfg_kw)
    return dataclasses.replace(cfg, rope_scaling=_rope_scaling(reader, arch, cfg, tensors, path))


def _rope_scaling(reader, arch: str, cfg: ModelConfig, tensors: dict, path: str) -> RopeScaling | None:
    kind = _field(reader, f"{arch}.rope.scaling.type")
    if "rope_freqs.weight" not in tensors:
        if kind not in (None, "none"):
            raise UserError(f"the GGUF file {path} uses RoPE scaling {kind!r}, which is not supported; "
                            "use a model without it or its HF checkpoint")
        return None
    factors = dequantize(tensors["rope_freqs.weight"]).reshape(-1)
    plain = rope_inv_freq(cfg)
    orig = _field(reader, f"{arch}.rope.scaling.original_context_length")
    for cand in _LLAMA3_SCALINGS:
        if orig is not None:
            cand = dataclasses.replace(cand, original_max_position_embeddings=int(orig))
        scaled = rope_inv_freq(dataclasses.replace(cfg, rope_scaling=cand))
        if factors.shape == plain.shape and np.allclose(plain / scaled, factors, rtol=1e-3):
            return cand
    raise UserError(f"the GGUF file {path} has RoPE frequency factors that match no Llama-3 scaling; "
                    "convert from its HF checkpoint instead")


def dequantize(t) -> np.ndarray:
    a = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.asarray(a, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])


def gguf_to_hf_name(name: str) -> str | None:
    for rx, hf in _GGUF_RULES:
        m = rx.fullmatch(name)
        if m:
            return hf.format(**m.groupdict())
    return None


def read_gguf(path: str) -> tuple[ModelConfig, Whole]:
    """(config, its tensors by HF name: float32 arrays in HF layout, dequantized whole when read) of a GGUF file."""
    reader = open_gguf(path)
    cfg = gguf_config(reader, path)
    by_hf: dict[str, Any] = {}
    for t in reader.tensors:
        if t.name == "rope_freqs.weight":  # folded into cfg.rope_scaling
            continue
        hf = gguf_to_hf_name(t.name)
        if hf is None:
            raise UserError(f"the GGUF file {path} has a tensor {t.name!r} this loader does not know; "
                            f"supported are plain {', '.join(GGUF_ARCHITECTURES)} decoders")
        by_hf[hf] = t
    permute = cfg.architecture == "LlamaForCausalLM"

    def get(hf_name: str) -> np.ndarray:
        t = by_hf[hf_name]
        w = dequantize(t)
        if permute and ".attn_q." in t.name:
            w = reverse_permute(w, cfg.num_heads)
        elif permute and ".attn_k." in t.name:
            w = reverse_permute(w, cfg.num_kv_heads)
        return w

    return cfg, Whole({hf: tuple(int(d) for d in reversed(t.shape)) for hf, t in by_hf.items()}, get)
