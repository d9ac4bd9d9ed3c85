"""The KV cache: a fixed-capacity pytree with per-row lengths.

Writes put T new entries at each row's own offset; rolling back is only moving `lengths` back, since
entries at or past a row's length are hidden by the attention mask and overwritten later.

The layout is heads-major, [L, B, Hkv, S, Dh]: each (row, kv head) is one contiguous [S, Dh] matrix, so the
attention products over the cache are plain batched matrix products (about twice as fast on CPU as the
sequence-major layout).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from pard_jax.model_config import ModelConfig


@struct.dataclass
class KVCache:
    k: jax.Array  # [L, B, Hkv, S, Dh]
    v: jax.Array  # [L, B, Hkv, S, Dh]
    lengths: jax.Array  # [B] int32: committed entries per row

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def batch(self) -> int:
        return self.k.shape[1]


def init_cache(cfg: ModelConfig, batch: int, capacity: int, dtype=jnp.float32) -> KVCache:
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, capacity, cfg.head_dim)
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype), lengths=jnp.zeros((batch,), jnp.int32))


def write(cache: KVCache, new_k: jax.Array, new_v: jax.Array, start: jax.Array) -> KVCache:
    """Store new entries [L, B, Hkv, T, Dh] at positions start[b] .. start[b]+T-1 of each row.

    `lengths` is left alone: the caller decides how much of what it wrote is committed.
    The caller guarantees start + T <= capacity (dynamic_update_slice would clamp, not fail).
    """

    def write_row(buf, new, s):  # buf [L, H, S, D], new [L, H, T, D]
        return jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), (0, 0, s, 0))

    per_row = jax.vmap(write_row, in_axes=(1, 1, 0), out_axes=1)
    return cache.replace(k=per_row(cache.k, new_k, start), v=per_row(cache.v, new_v, start))
