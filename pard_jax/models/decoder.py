"""One Flax Linen decoder for Llama, Qwen2 and Qwen3, used pure-functionally.

`params` (and optionally a KV cache) go in; logits and the new keys/values come out. The layer stack is
an `nn.scan`, so compile time does not grow with depth. Parameters and activations carry logical axis
names; `pard_jax.sharding` maps them to mesh axes.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from pard_jax.models import masks
from pard_jax.models.cache import KVCache, write
from pard_jax.models.config import ModelConfig

Dtype = Any
_init = nn.initializers.normal(stddev=0.02)


def _kernel(axes):
    return nn.with_logical_partitioning(_init, axes)


def rope_inv_freq(cfg: ModelConfig) -> np.ndarray:
    """[Dh/2] inverse frequencies, with Llama-3.1 ('llama3') scaling when configured."""
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2, dtype=np.float64) / cfg.head_dim))
    s = cfg.rope_scaling
    if s is None:
        return inv.astype(np.float32)
    low_wavelen = s.original_max_position_embeddings / s.low_freq_factor
    high_wavelen = s.original_max_position_embeddings / s.high_freq_factor
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / s.factor, inv)
    smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(cfg: ModelConfig, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos, sin [B, T, Dh] for integer positions [B, T] (HF's half-rotation layout)."""
    freqs = positions[..., None].astype(jnp.float32) * jnp.asarray(rope_inv_freq(cfg))
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, T, H, Dh] rotated by position."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return (x.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin).astype(x.dtype)


class RMSNorm(nn.Module):
    eps: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)), (x.shape[-1],))
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (scale * xf.astype(self.dtype)).astype(self.dtype)


def _dense(features, axes, use_bias, dtype, name):
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=_kernel(axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[-1:]), name=name)


class Attention(nn.Module):
    cfg: ModelConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, x, cos, sin, new_mask, cache_k, cache_v, cache_mask):
        """x [B, T, D]; new_mask [B, T, T]; cache_k/v [B, Hkv, S, Dh] or None; cache_mask [B, T, S].

        Returns the output [B, T, D] and this call's (k, v) [B, Hkv, T, Dh] for the cache.
        """
        cfg = self.cfg
        B, T, _ = x.shape
        H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q = _dense(H * Dh, ("embed", "q_heads"), cfg.qkv_bias, self.dtype, "q_proj")(x).reshape(B, T, H, Dh)
        k = _dense(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, self.dtype, "k_proj")(x).reshape(B, T, Hkv, Dh)
        v = _dense(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, self.dtype, "v_proj")(x).reshape(B, T, Hkv, Dh)
        if cfg.qk_norm:
            q = RMSNorm(cfg.rms_norm_eps, self.dtype, name="q_norm")(q)
            k = RMSNorm(cfg.rms_norm_eps, self.dtype, name="k_norm")(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q = nn.with_logical_constraint(q, ("batch", "length", "act_heads", "head_dim"))

        # Heads-major: query head h = kv head h // G, group member h % G (GQA); [B, Hkv, G, T, Dh].
        G = H // Hkv
        qg = q.reshape(B, T, Hkv, G, Dh).transpose(0, 2, 3, 1, 4) * (1.0 / math.sqrt(Dh))
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, Hkv, T, Dh]
        neg = jnp.finfo(jnp.float32).min
        scores = jnp.einsum("bkgtd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32)
        scores = jnp.where(new_mask[:, None, None], scores, neg)
        if cache_k is None:
            probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
            out = jnp.einsum("bkgts,bksd->bkgtd", probs, v)
        else:
            S = cache_k.shape[2]
            cached = jnp.einsum("bkgtd,bksd->bkgts", qg, cache_k.astype(self.dtype),
                                preferred_element_type=jnp.float32)
            cached = jnp.where(cache_mask[:, None, None], cached, neg)
            probs = jax.nn.softmax(jnp.concatenate([cached, scores], axis=-1), axis=-1).astype(self.dtype)
            # Two products instead of concatenating the values: no copy of the cache per layer.
            out = (jnp.einsum("bkgts,bksd->bkgtd", probs[..., :S], cache_v.astype(self.dtype))
                   + jnp.einsum("bkgts,bksd->bkgtd", probs[..., S:], v))
        out = out.transpose(0, 3, 1, 2, 4).reshape(B, T, H * Dh)
        out = _dense(cfg.hidden_size, ("q_heads", "embed"), cfg.o_bias, self.dtype, "o_proj")(out)
        return out, (k, v)


class MLP(nn.Module):
    cfg: ModelConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        gate = _dense(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, self.dtype, "gate_proj")(x)
        up = _dense(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, self.dtype, "up_proj")(x)
        h = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "act_mlp"))
        return _dense(cfg.hidden_size, ("mlp", "embed"), cfg.mlp_bias, self.dtype, "down_proj")(h)


class Block(nn.Module):
    cfg: ModelConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, x, cos, sin, new_mask, cache_kv, cache_mask):
        cache_k, cache_v = cache_kv if cache_kv is not None else (None, None)
        h, kv = Attention(self.cfg, self.dtype, name="attn")(
            RMSNorm(self.cfg.rms_norm_eps, self.dtype, name="input_norm")(x), cos, sin, new_mask,
            cache_k, cache_v, cache_mask)
        x = x + h
        x = x + MLP(self.cfg, self.dtype, name="mlp")(RMSNorm(self.cfg.rms_norm_eps, self.dtype, name="post_attn_norm")(x))
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        return x, kv


class Decoder(nn.Module):
    """tokens [B, T] -> logits [B, T, V] (or [B, N, V] at `logits_at`), plus new keys/values."""

    cfg: ModelConfig
    dtype: Dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, tokens, positions, *, new_mask=None, cache_kv=None, cache_mask=None, logits_at=None):
        """tokens, positions [B, T] int32.

        new_mask [B, T, T] (default causal) says which of this call's tokens each token sees;
        cache_kv = (k, v) [L, B, Hkv, S, Dh] with cache_mask [B, T, S] adds visible cached entries.
        logits_at [B, N] int32 computes logits only at those indices of each row (saves the unembedding).
        Returns logits and the new (k, v) [L, B, Hkv, T, Dh].
        """
        cfg = self.cfg
        B, T = tokens.shape
        embed = self.param("embed", nn.with_logical_partitioning(_init, ("vocab", "embed")),
                           (cfg.vocab_size, cfg.hidden_size))
        x = jnp.take(embed, tokens, axis=0).astype(self.dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        cos, sin = rope_tables(cfg, positions)
        if new_mask is None:
            new_mask = masks.causal_mask(B, T)

        block = nn.remat(Block, prevent_cse=False) if self.remat else Block
        layers = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, 0, nn.broadcast),
            length=cfg.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, self.dtype, name="layers")
        x, new_kv = layers(x, cos, sin, new_mask, cache_kv, cache_mask)

        if logits_at is not None:
            x = jnp.take_along_axis(x, logits_at[:, :, None], axis=1)
        x = RMSNorm(cfg.rms_norm_eps, self.dtype, name="final_norm")(x)
        if cfg.tie_word_embeddings:
            logits = jnp.einsum("btd,vd->btv", x, embed.astype(self.dtype), preferred_element_type=jnp.float32)
        else:
            head = self.param("lm_head", _kernel(("embed", "vocab")), (cfg.hidden_size, cfg.vocab_size))
            logits = jnp.einsum("btd,dv->btv", x, head.astype(self.dtype), preferred_element_type=jnp.float32)
        return logits, new_kv


def init_params(cfg: ModelConfig, rng: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters (plain arrays, logical-axis boxes removed)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    variables = Decoder(cfg, dtype).init(rng, tokens, tokens)
    return nn.meta.unbox(variables)["params"]


def param_logical_axes(cfg: ModelConfig) -> dict:
    """The logical axis names of every parameter, as a tree of PartitionSpecs shaped like params."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    abstract = jax.eval_shape(lambda: Decoder(cfg).init(jax.random.key(0), tokens, tokens))
    return nn.get_partition_spec(abstract)["params"]


def forward(params, cfg: ModelConfig, tokens, positions, *, new_mask=None, dtype=jnp.float32, remat=False,
            logits_at=None):
    """Uncached forward: logits [B, T, V] (training, parity checks)."""
    logits, _ = Decoder(cfg, dtype, remat).apply({"params": params}, tokens, positions, new_mask=new_mask,
                                                 logits_at=logits_at)
    return logits


def forward_cached(params, cfg: ModelConfig, tokens, cache: KVCache, start, *, dtype=jnp.float32, logits_at=None):
    """Run T new tokens of each row at positions start[b] .. start[b]+T-1 against the cache.

    Each row sees its cache entries before `start[b]` and, causally, this call's tokens. The call's
    keys/values are written at those positions (see `models.cache` for how that rolls back rejected tokens).
    Returns logits [B, T, V] (or [B, N, V] with `logits_at` [B, N]) and the new cache.
    """
    B, T = tokens.shape
    positions = start[:, None] + jnp.arange(T, dtype=jnp.int32)[None, :]
    cache_mask = masks.cache_prefix_mask(start, T, cache.capacity)
    logits, (k, v) = Decoder(cfg, dtype).apply({"params": params}, tokens, positions, cache_kv=(cache.k, cache.v),
                                               cache_mask=cache_mask, logits_at=logits_at)
    return logits, write(cache, k, v, start)


def prefill(params, cfg: ModelConfig, tokens, cache: KVCache, *, dtype=jnp.float32) -> KVCache:
    """Write the keys/values of right-padded prompts [B, P] at positions 0..P-1 (causal; no logits needed).

    Entries past a row's real length are garbage that the row's later writes overwrite.
    """
    B, P = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(P, dtype=jnp.int32), (B, P))
    _, (k, v) = Decoder(cfg, dtype).apply({"params": params}, tokens, positions,
                                          logits_at=jnp.zeros((B, 1), jnp.int32))
    return write(cache, k, v, jnp.zeros((B,), jnp.int32))
