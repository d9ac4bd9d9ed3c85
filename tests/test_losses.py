"""The chunked training loss equals the loss over whole-row logits, in value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.models.decoder import forward, head_of
from pard_jax.training import losses
from tests.tiny_models import tiny_config, tiny_params


def whole_row_loss(params, cfg, tokens, positions, labels):
    logits = forward(params, cfg, tokens, positions)
    valid = labels >= 0
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, jnp.where(valid, labels, 0)[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, logz - picked, 0.0)), (jnp.argmax(logits, -1) == labels) & valid


def chunked_loss(params, cfg, tokens, positions, labels, chunk):
    hidden = forward(params, cfg, tokens, positions, head=False)
    out = losses.map_chunks(losses.cross_entropy(jnp.float32), head_of(params, cfg), hidden, labels, chunk=chunk)
    return jnp.sum(out["nll"]), out["hit"]


@pytest.mark.parametrize("tied", [True, False])
def test_chunked_cross_entropy_is_the_whole_row_one(tied):
    cfg = tiny_config(vocab=48, tie_word_embeddings=tied)
    params = tiny_params(cfg, seed=1, scale=3.0)
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(0, 48, (2, 11)), jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(11, dtype=jnp.int32), (2, 11))
    labels = jnp.asarray(np.where(rng.random((2, 11)) < 0.3, -1, rng.integers(0, 48, (2, 11))), jnp.int32)
    (want, want_hit), want_grad = jax.value_and_grad(whole_row_loss, has_aux=True)(
        params, cfg, tokens, positions, labels)
    # 11 positions in chunks of 4: three chunks, the last one padded.
    (got, got_hit), got_grad = jax.jit(jax.value_and_grad(chunked_loss, has_aux=True), static_argnums=(1, 5))(
        params, cfg, tokens, positions, labels, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_array_equal(got_hit, want_hit)
    for g, w in zip(jax.tree.leaves(got_grad), jax.tree.leaves(want_grad)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
