"""The KV cache: one fixed-capacity pair of key/value buffers per layer, written at each row's own offset.

The cache keeps no lengths: a call's token at position p attends to the entries at positions 0..p (its own
keys/values are written first, `masks.cache_mask`), so whatever lies past it is invisible. That is how
speculative decoding rolls back:

- target: each verify call writes its k+1 tokens at `last` (the position of the newest committed token);
  entries of rejected draft tokens lie past the next `last`, so the next verify overwrites them before any
  token can see them;
- draft: each draft call re-feeds a fixed window of the last committed tokens (`speculative.steps.window`,
  starting k positions before `last`); an iteration commits at most k+1 tokens, so the window starts at or
  before the first entry a previous draft call wrote for a mask or a rejected token, and rewrites it before
  anything reads it.

Each layer's buffers are [B, Hkv, S, Dh], heads-major: each (row, kv head) is one contiguous [S, Dh] matrix,
so the attention products over the cache are plain batched matrix products (faster on CPU than the
sequence-major layout: docs/kernels.md). The layers' buffers are separate arrays (a tuple, not one stacked
array), so the unrolled decode step updates each in place.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from pard_jax.models.config import ModelConfig


@struct.dataclass
class LayerCache:
    k: jax.Array  # [B, Hkv, S, Dh]
    v: jax.Array  # [B, Hkv, S, Dh]

    @property
    def capacity(self) -> int:
        return self.k.shape[2]


KVCache = tuple[LayerCache, ...]  # one per layer
# Logical axes of each buffer: rows follow the batch, KV heads follow the model's heads (speculative.placement).
LOGICAL_AXES = ("batch", "kv_heads", "length", "head_dim")


def bytes_per_position(cfg: ModelConfig, dtype=jnp.float32) -> int:
    """Bytes of one row's cache per position: the keys and values of every layer."""
    return 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * jnp.dtype(dtype).itemsize


def init_cache(cfg: ModelConfig, batch: int, capacity: int, dtype=jnp.float32) -> KVCache:
    shape = (batch, cfg.num_kv_heads, capacity, cfg.head_dim)

    def zeros():  # made in place, each device its own shard (when traced under sharding rules)
        return nn.with_logical_constraint(jnp.zeros(shape, dtype), LOGICAL_AXES)
    return tuple(LayerCache(zeros(), zeros()) for _ in range(cfg.num_layers))


def write(cache: LayerCache, new_k: jax.Array, new_v: jax.Array, start: jax.Array) -> LayerCache:
    """Store one layer's new entries [B, Hkv, T, Dh] at positions start[b] .. start[b]+T-1 of each row.

    The caller guarantees start + T <= capacity (dynamic_update_slice would clamp, not fail).
    """
    def write_row(buf, new, s):  # buf [Hkv, S, Dh], new [Hkv, T, Dh]
        return jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), (0, s, 0))

    per_row = jax.vmap(write_row)
    return LayerCache(nn.with_logical_constraint(per_row(cache.k, new_k, start), LOGICAL_AXES),
                      nn.with_logical_constraint(per_row(cache.v, new_v, start), LOGICAL_AXES))
