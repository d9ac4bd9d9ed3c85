"""Draft steps: propose k tokens (and their distributions) for the target to verify.

`pard_draft` is PARD's single forward pass: the latest committed tokens followed by mask tokens.
`ar_draft` is vanilla speculative decoding: k autoregressive single-token steps in one jitted call.

Both read a fixed-length window of the committed sequence so that every row, whatever it accepted last
time, uses the same static shapes: the window starts at max(last - k, 0) and re-writes already-cached
positions of real tokens, which is harmless (their keys/values depend only on the prefix).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pard_jax import model
from pard_jax.cache import KVCache
from pard_jax.model_config import ModelConfig
from pard_jax.sampling import SamplingParams, probabilities, sample


class Draft(NamedTuple):
    tokens: jax.Array  # [B, k] int32
    probs: jax.Array | None  # [B, k, V_target] float32; None when greedy
    cache: KVCache


def window(seq: jax.Array, last: jax.Array, width: int, back: int, fill: int) -> tuple[jax.Array, jax.Array]:
    """Each row's tokens at positions start .. start+width-1 with start = max(last - back, 0).

    seq [B, C] holds the committed tokens; positions after `last` [B] read as `fill`.
    Returns (tokens [B, width], start [B]).
    """
    start = jnp.maximum(last - back, 0)
    rows = jax.vmap(lambda r, s: jax.lax.dynamic_slice(r, (s,), (width,)))(seq, start)
    positions = start[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :]
    return jnp.where(positions <= last[:, None], rows, fill), start


def align_vocab(logits: jax.Array, vocab: int) -> jax.Array:
    """Draft logits [..., Vd] over the target's vocabulary [..., vocab]: extra ids dropped, missing ids -inf."""
    vd = logits.shape[-1]
    if vd >= vocab:
        return logits[..., :vocab]
    pad = jnp.full(logits.shape[:-1] + (vocab - vd,), jnp.finfo(logits.dtype).min, logits.dtype)
    return jnp.concatenate([logits, pad], axis=-1)


def choose(key: jax.Array, logits: jax.Array, sp: SamplingParams) -> tuple[jax.Array, jax.Array | None]:
    """Pick draft tokens from logits [..., V]: argmax when greedy, else sample and return the distribution."""
    if sp.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32), None
    probs = probabilities(logits, sp)
    return sample(key, probs), probs


def pard_draft(params, cfg: ModelConfig, cache: KVCache, seq: jax.Array, last: jax.Array, *, k: int,
               mask_id: int, vocab: int, sp: SamplingParams, key: jax.Array, dtype=jnp.float32) -> Draft:
    """k draft tokens in ONE forward pass: [... x_last, m, m, ..., m] with k-1 mask tokens.

    The output at x_last predicts the next token; the output at the j-th mask the token j+1 ahead.
    The masks' cache entries lie past the committed length and are overwritten later.
    """
    tokens, start = window(seq, last, 2 * k, k, mask_id)
    at = (last - start)[:, None] + jnp.arange(k, dtype=jnp.int32)[None, :]
    logits, cache = model.forward_cached(params, cfg, tokens, cache, start, dtype=dtype, logits_at=at)
    d, q = choose(key, align_vocab(logits, vocab), sp)
    return Draft(d, q, cache)


def ar_draft(params, cfg: ModelConfig, cache: KVCache, seq: jax.Array, last: jax.Array, *, k: int,
             vocab: int, sp: SamplingParams, key: jax.Array, dtype=jnp.float32) -> Draft:
    """k draft tokens from k autoregressive steps of the draft (vanilla speculative decoding)."""
    keys = jax.random.split(key, k)
    tokens, start = window(seq, last, k + 1, k, 0)
    logits, cache = model.forward_cached(params, cfg, tokens, cache, start, dtype=dtype,
                                         logits_at=(last - start)[:, None])
    d0, q0 = choose(keys[0], align_vocab(logits[:, 0], vocab), sp)

    def step(carry, xs):
        token, cache = carry
        j, step_key = xs
        logits, cache = model.forward_cached(params, cfg, token[:, None], cache, last + j, dtype=dtype)
        d, q = choose(step_key, align_vocab(logits[:, 0], vocab), sp)
        return (d, cache), (d, q)

    (_, cache), (ds, qs) = jax.lax.scan(step, (d0, cache), (jnp.arange(1, k, dtype=jnp.int32), keys[1:]))
    d = jnp.concatenate([d0[:, None], ds.T], axis=1)
    q = None if sp.greedy else jnp.concatenate([q0[:, None], jnp.moveaxis(qs, 0, 1)], axis=1)
    return Draft(d, q, cache)
