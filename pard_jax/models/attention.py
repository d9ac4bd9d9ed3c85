"""Grouped-query attention: the module, and the three ways it reads keys and values.

- `attend`: one masked product (training rows, and caches the kernels read whole);
- `attend_lower_triangular`: training rows under which no token sees a later one, queries in blocks;
- `live_attention`: a KV cache read in blocks up to the batch's newest position (`Kernels.cache_blocks`).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from pard_jax.models import masks
from pard_jax.models.cache import write
from pard_jax.models.config import ModelConfig
from pard_jax.models.kernels import PLAIN, Kernels
from pard_jax.models.layers import Dtype, RMSNorm, dense
from pard_jax.models.rope import apply_rope


class Attention(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    query_block: int | None = None  # see `decoder.Decoder`
    out_major: bool = False  # kernels stored [out, in] (the decoding layout, `layout.Layout`)
    kernels: Kernels = PLAIN

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache=None, positions=None):
        """x [B, T, D] -> (out [B, T, D], cache).

        Without a cache, `mask` [B, T, T] says which of this call's tokens each token sees (training).
        With a cache (k, v) [B, Hkv, S, Dh] of one layer, this call's keys/values are first written at each
        row's `positions` (consecutive, [B, T]), then every token attends to the cache entries at positions
        up to its own: entries past it are stale (rolled back, or not yet rewritten) and hidden. Returns the
        updated cache.
        """
        cfg = self.cfg
        B, T, _ = x.shape
        H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        proj = functools.partial(dense, dtype=self.dtype, out_major=self.out_major, kernels=self.kernels)
        q = proj(H * Dh, ("embed", "q_heads"), cfg.qkv_bias, name="q_proj")(x).reshape(B, T, H, Dh)
        k = proj(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, name="k_proj")(x).reshape(B, T, Hkv, Dh)
        v = proj(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, name="v_proj")(x).reshape(B, T, Hkv, Dh)
        if cfg.qk_norm:
            q = RMSNorm(cfg.rms_norm_eps, self.dtype, name="q_norm")(q)
            k = RMSNorm(cfg.rms_norm_eps, self.dtype, name="k_norm")(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q = nn.with_logical_constraint(q, ("batch", "length", "act_heads", "head_dim"))

        # Heads-major: query head h = kv head h // G, group member h % G (GQA); [B, Hkv, G, T, Dh].
        G = H // Hkv
        qg = q.reshape(B, T, Hkv, G, Dh).transpose(0, 2, 3, 1, 4) * (1.0 / math.sqrt(Dh))
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, Hkv, T, Dh]
        if cache is not None:
            cache = write(cache, k, v, positions[:, 0])
            k, v = cache.k.astype(self.dtype), cache.v.astype(self.dtype)
            block = self.kernels.cache_block(cache.capacity)
            if block is not None:
                out = live_attention(qg, k, v, positions, block)
            else:
                out = attend(qg, k, v, masks.cache_mask(positions, cache.capacity))
        elif self.query_block:
            out = attend_lower_triangular(qg, k, v, mask, self.query_block)
        else:
            out = attend(qg, k, v, mask)
        out = out.astype(self.dtype).transpose(0, 3, 1, 2, 4).reshape(B, T, H * Dh)
        out = proj(cfg.hidden_size, ("q_heads", "embed"), cfg.o_bias, name="o_proj")(out)
        return out, cache


def attend(qg, k, v, mask):
    """Scaled queries qg [B, Hkv, G, T, Dh] over keys/values [B, Hkv, S, Dh] where mask [B, T, S] allows."""
    scores = jnp.einsum("bkgtd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bksd->bkgtd", probs, v)


def attend_lower_triangular(qg, k, v, mask, block: int):
    """`attend` for a mask [B, T, T] under which no query sees a later key: the queries go `block` at a time,
    each block over the keys up to its own end, which skips the upper triangle of scores (about 3/8 of them
    at 4 blocks). Equal to `attend` for every query that sees some key."""
    T = qg.shape[3]
    outs = [attend(qg[:, :, :, i:i + block], k[:, :, :i + block], v[:, :, :i + block], mask[:, i:i + block, :i + block])
            for i in range(0, T, block)]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=3)


def live_attention(qg, k, v, positions, block: int):
    """`attend` over a cache, reading only its blocks of `block` positions up to the newest query position of
    the batch: a running (max, sum, weighted values) softmax over blocks, as in flash decoding. Equal to the
    masked product over the whole cache, at a cost that follows the live context."""
    S = k.shape[2]
    low = jnp.finfo(jnp.float32).min

    def one_block(i, carry):
        m, total, acc = carry
        begin = jnp.minimum(i * block, S - block)  # the last block may overlap the one before it,
        kb = jax.lax.dynamic_slice_in_dim(k, begin, block, axis=2)
        vb = jax.lax.dynamic_slice_in_dim(v, begin, block, axis=2)
        key_pos = (begin + jnp.arange(block))[None, None, :]
        mask = (key_pos >= i * block) & (key_pos <= positions[:, :, None])  # ...so each key counts once
        scores = jnp.einsum("bkgtd,bksd->bkgts", qg, kb, preferred_element_type=jnp.float32)
        scores = jnp.where(mask[:, None, None], scores, low)
        new_m = jnp.maximum(m, scores.max(axis=-1))
        scale = jnp.exp(m - new_m)
        p = jnp.exp(scores - new_m[..., None])
        pv = jnp.einsum("bkgts,bksd->bkgtd", p.astype(v.dtype), vb, preferred_element_type=jnp.float32)
        return new_m, total * scale + p.sum(axis=-1), acc * scale[..., None] + pv

    shape = qg.shape[:-1]
    init = (jnp.full(shape, low, jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(qg.shape, jnp.float32))
    live = jnp.max(positions) // block + 1
    _, total, acc = jax.lax.fori_loop(0, live, one_block, init)
    return acc / total[..., None]
