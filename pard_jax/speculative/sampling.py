"""Turning logits into the distributions that drafting, verification and sampling share."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pard_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """temperature 0 means greedy; top_k 0 and top_p 1.0 mean no truncation. Hashable: a jit static."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self):
        if not self.temperature >= 0:
            raise UserError(f"temperature must be >= 0 (0 means greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise UserError(f"top-k must be >= 0 (0 means no top-k), got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def probabilities(logits: jax.Array, sp: SamplingParams) -> jax.Array:
    """[..., V] logits -> [..., V] float32 probabilities after temperature, top-k and top-p.

    The same transformation is applied to target and draft logits, so speculative sampling is exact
    for the distribution a person asked for.
    """
    x = logits.astype(jnp.float32) / max(sp.temperature, 1e-6)
    neg = jnp.finfo(jnp.float32).min
    if sp.top_k > 0 and sp.top_k < x.shape[-1]:
        kth = jax.lax.top_k(x, sp.top_k)[0][..., -1:]
        x = jnp.where(x >= kth, x, neg)
    probs = jax.nn.softmax(x, axis=-1)
    if sp.top_p < 1.0:
        # Keep the smallest head of the sorted distribution whose mass reaches top_p.
        sorted_p = jnp.sort(probs, axis=-1)[..., ::-1]
        before = jnp.cumsum(sorted_p, axis=-1) - sorted_p
        cutoff = jnp.min(jnp.where(before < sp.top_p, sorted_p, jnp.inf), axis=-1, keepdims=True)
        probs = jnp.where(probs >= cutoff, probs, 0.0)
        probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
    return probs


def sample(key: jax.Array, probs: jax.Array) -> jax.Array:
    """One token id per distribution: [..., V] -> [...] int32."""
    return jax.random.categorical(key, jnp.log(probs), axis=-1).astype(jnp.int32)
