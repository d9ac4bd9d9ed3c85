"""The acceptance rule of speculative decoding: how many draft tokens to keep, and the next token.

Both rules return (num_accepted [B] in 0..k, next_token [B]); the committed tokens of an iteration are
draft[:, :num_accepted] followed by next_token. With k = 0 these reduce to plain decoding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pard_jax.sampling import sample


def leading_true(mask: jax.Array) -> jax.Array:
    """[B, k] bool -> [B] int32: the length of the all-True prefix of each row."""
    return jnp.sum(jnp.cumprod(mask.astype(jnp.int32), axis=-1), axis=-1).astype(jnp.int32)


def accept_greedy(draft: jax.Array, target_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """draft [B, k]; target_logits [B, k+1, V]. Keep drafts while they equal the target's argmax."""
    choice = jnp.argmax(target_logits, axis=-1).astype(jnp.int32)  # [B, k+1]
    n = leading_true(draft == choice[:, :-1])
    return n, jnp.take_along_axis(choice, n[:, None], axis=1)[:, 0]


def accept_sampling(key: jax.Array, draft: jax.Array, q: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Lossless speculative sampling (Leviathan et al. / Chen et al.).

    draft [B, k] with draft[:, j] ~ q[:, j]; q [B, k, V] draft probabilities; p [B, k+1, V] target
    probabilities. Accept draft j with probability min(1, p_j(d_j) / q_j(d_j)); at the first rejection
    sample from normalize(max(0, p_j - q_j)); if all k are accepted, sample from p_{k+1}.
    """
    B, k = draft.shape
    k_accept, k_next = jax.random.split(key)
    p_d = jnp.take_along_axis(p[:, :k], draft[..., None], axis=-1)[..., 0]
    q_d = jnp.take_along_axis(q, draft[..., None], axis=-1)[..., 0]
    u = jax.random.uniform(k_accept, (B, k))
    n = leading_true(u * q_d < p_d)  # u < p/q without dividing by a zero q
    q_ext = jnp.concatenate([q, jnp.zeros_like(p[:, :1])], axis=1)  # q_{k+1} = 0: the bonus is drawn from p
    p_n = jnp.take_along_axis(p, n[:, None, None], axis=1)[:, 0]
    q_n = jnp.take_along_axis(q_ext, n[:, None, None], axis=1)[:, 0]
    residual = jnp.maximum(p_n - q_n, 0.0)
    mass = jnp.sum(residual, axis=-1, keepdims=True)
    residual = jnp.where(mass > 0, residual / jnp.where(mass > 0, mass, 1.0), p_n)
    return n, sample(k_next, residual)
