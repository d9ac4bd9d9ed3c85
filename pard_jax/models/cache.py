"""The KV cache: a fixed-capacity pytree of keys and values, written at each row's own offset.

The cache keeps no lengths: what a row may see is decided per call by its write offset `start`, and
`masks.cache_prefix_mask` hides every entry at or past it. That is how speculative decoding rolls back:

- target: each verify call writes its k+1 tokens at `last` (the position of the newest committed token);
  entries of rejected draft tokens lie past the next `last`, so the next verify hides and overwrites them;
- draft: each draft call re-feeds a fixed window of the last committed tokens (`speculative.steps.window`,
  starting k positions before `last`); an iteration commits at most k+1 tokens, so the window starts at or
  before the first entry a previous draft call wrote for a mask or a rejected token, and rewrites it before
  anything reads it.

The layout is heads-major, [L, B, Hkv, S, Dh]: each (row, kv head) is one contiguous [S, Dh] matrix, so the
attention products over the cache are plain batched matrix products (about twice as fast on CPU as the
sequence-major layout).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from pard_jax.models.config import ModelConfig


@struct.dataclass
class KVCache:
    k: jax.Array  # [L, B, Hkv, S, Dh]
    v: jax.Array  # [L, B, Hkv, S, Dh]

    @property
    def capacity(self) -> int:
        return self.k.shape[3]


def init_cache(cfg: ModelConfig, batch: int, capacity: int, dtype=jnp.float32) -> KVCache:
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, capacity, cfg.head_dim)
    return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))


def write(cache: KVCache, new_k: jax.Array, new_v: jax.Array, start: jax.Array) -> KVCache:
    """Store new entries [L, B, Hkv, T, Dh] at positions start[b] .. start[b]+T-1 of each row.

    The caller guarantees start + T <= capacity (dynamic_update_slice would clamp, not fail).
    """

    def write_row(buf, new, s):  # buf [L, H, S, D], new [L, H, T, D]
        return jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), (0, 0, s, 0))

    per_row = jax.vmap(write_row, in_axes=(1, 1, 0), out_axes=1)
    return cache.replace(k=per_row(cache.k, new_k, start), v=per_row(cache.v, new_v, start))
