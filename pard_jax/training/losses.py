"""Token losses over the vocabulary, a chunk of the sequence at a time.

The logits of a whole row, float32 over the vocabulary (128256 for Llama 3), are most of a training step's
memory: [rows, T, V] values, and again for their gradient. Here they exist one sequence chunk at a time: the
final hidden states [B, T, D] are split into chunks of `chunk` positions, each chunk's logits are made from the
head, reduced to per-token values and dropped, and the backward pass makes them again (`jax.checkpoint`). The
batch axis stays whole in every chunk, so its sharding over the mesh is kept.

`map_chunks` is the chunking; `cross_entropy` the per-token loss it maps. A distillation term (KL between the
target's and the draft's logits, with per-token weights) maps the same way: its function gets the chunk's
draft hidden states and whatever per-token arrays it names (the target's hidden states or logits, the weights).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

# Positions per chunk: [B, 256, V] float32 logits live at once (Llama 3: 128 MiB per row), not [B, T, V].
CHUNK = 256


def logits_of(hidden: jax.Array, head: jax.Array, dtype) -> jax.Array:
    """[..., D] hidden states x head [V, D] -> float32 logits [..., V], as the decoder's head computes them."""
    return jnp.einsum("...d,vd->...v", hidden.astype(dtype), head.astype(dtype), preferred_element_type=jnp.float32)


def map_chunks(fn: Callable, head: jax.Array, hidden: jax.Array, *per_token: jax.Array, chunk: int = CHUNK):
    """fn(hidden [B, c, D], head, *per_token [B, c, ...]) -> a tree of [B, c] arrays, applied to chunks of `chunk`
    positions of [B, T, ...] inputs; returns the tree at [B, T]. Only one chunk's logits are alive at a time, in
    the forward pass and in the backward pass (which recomputes them)."""
    B, T = hidden.shape[:2]
    c = min(chunk, T)
    n = -(-T // c)
    pad = n * c - T

    def split(x):  # [B, T, ...] -> [n, B, c, ...]
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)) if pad else x
        return jnp.moveaxis(x.reshape(B, n, c, *x.shape[2:]), 1, 0)

    body = jax.checkpoint(lambda xs: fn(xs[0], head, *xs[1:]))
    out = jax.lax.map(body, tuple(split(x) for x in (hidden, *per_token)))
    return jax.tree.map(lambda y: jnp.moveaxis(y, 0, 1).reshape(B, n * c, *y.shape[3:])[:, :T], out)


def token_cross_entropy(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """{"nll": -log p(label), "hit": argmax == label} per token of float32 logits [..., V]; labels < 0 (no
    target) give 0 and False."""
    valid = labels >= 0
    safe = jnp.where(valid, labels, 0)
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    hit = (jnp.argmax(logits, axis=-1) == labels) & valid
    return {"nll": jnp.where(valid, logz - picked, 0.0), "hit": hit}


def cross_entropy(dtype) -> Callable:
    """The per-token function for `map_chunks`: (hidden, head, labels) -> `token_cross_entropy` at [B, c]."""
    return lambda hidden, head, labels: token_cross_entropy(logits_of(hidden, head, dtype), labels)
