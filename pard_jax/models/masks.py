"""Attention masks, all derived from per-token metadata inside the jitted model (never built on the host).

Shapes use B = batch, T = query/new tokens, S = cache capacity. `True` means "may attend".
"""

from __future__ import annotations

import jax.numpy as jnp


def causal_mask(batch: int, length: int) -> jnp.ndarray:
    """[B, T, T]: token i sees tokens 0..i of the same call."""
    m = jnp.tril(jnp.ones((length, length), dtype=bool))
    return jnp.broadcast_to(m, (batch, length, length))


def cache_mask(positions: jnp.ndarray, capacity: int) -> jnp.ndarray:
    """[B, T, S]: the token at position p sees the cache entries at positions 0..p (its own, just written).

    Entries past p are stale (rolled back, or not yet rewritten) and hidden; within the call this is causal.
    """
    return jnp.arange(capacity)[None, None, :] <= positions[:, :, None]


def pard_attention_mask(segment: jnp.ndarray, block: jnp.ndarray, anchor: jnp.ndarray,
                        position: jnp.ndarray) -> jnp.ndarray:
    """[B, T, T] PARD training mask over packed tokens.

    PARD trains k blocks per sequence at once: block 0 is the sequence x_0 .. x_{L-1}, and block j >= 1
    holds mask tokens, the one at position t predicting x_{t+1} from the real prefix x_0 .. x_{t-j} (its
    anchor) followed by j mask tokens, exactly what the draft sees at inference when it appends mask tokens
    to the committed text. COD (`training.cod`) keeps only some (block, position) pairs and packing puts
    several examples in one row, so the mask is derived from per-token metadata rather than from a layout.

    Each token carries its packed-example `segment` (0 = padding, never attended), its `block` j
    (0 = the real sequence, j >= 1 = mask tokens), its `position` t and its `anchor` a = t - j.
    A query q sees a key k iff they share a segment and either k is a real token at or before q's
    anchor, or k is a mask token of the same anchor in a block no later than q's.
    """
    same_segment = (segment[:, :, None] == segment[:, None, :]) & (segment[:, None, :] > 0)
    bq, bk = block[:, :, None], block[:, None, :]
    aq, ak = anchor[:, :, None], anchor[:, None, :]
    real_prefix = (bk == 0) & (position[:, None, :] <= aq)
    same_chain = (bk >= 1) & (ak == aq) & (bk <= bq)
    return same_segment & (real_prefix | same_chain)
