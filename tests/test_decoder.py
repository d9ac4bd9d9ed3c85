"""The decoder's two layer layouts, its kernels, the KV cache write, and the draft window."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.models import attention, decoder, layers
from pard_jax.models.cache import LayerCache, init_cache, write
from pard_jax.models.kernels import Kernels
from pard_jax.models.layout import stack_layers, unstack_layers
from pard_jax.speculative.steps import window
from tests.tiny_models import forward, tiny_config, tiny_params

CFGS = [tiny_config(), tiny_config(qk_norm=True, qkv_bias=True, tie_word_embeddings=False)]

forward_cached = jax.jit(decoder.forward_cached, static_argnums=1)
prefill = jax.jit(decoder.prefill, static_argnums=1, static_argnames="chunk")


@pytest.mark.parametrize("cfg", CFGS)
def test_layouts_round_trip_and_agree(cfg):
    params = tiny_params(cfg, seed=0, scale=3.0)
    per_layer = unstack_layers(params)
    assert sorted(k for k in per_layer if k.startswith("layers")) == [f"layers_{i}" for i in range(cfg.num_layers)]
    back = stack_layers(per_layer)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, back))
    tokens = jax.random.randint(jax.random.key(1), (2, 7), 0, cfg.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(7), (2, 7))
    scanned = forward(params, cfg, tokens, positions)
    unrolled = forward(per_layer, cfg, tokens, positions)
    np.testing.assert_allclose(np.asarray(scanned), np.asarray(unrolled), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cfg", CFGS)
def test_cached_calls_equal_one_uncached_pass(cfg):
    """Prefill 5 tokens, then calls of 3, 1 and 2 tokens: the logits equal one causal pass over all 11.

    Rows start at different offsets, and a rolled-back write (garbage past the second row's position) must
    not change anything."""
    params = unstack_layers(tiny_params(cfg, seed=2, scale=3.0))
    tokens = jax.random.randint(jax.random.key(3), (2, 11), 0, cfg.vocab_size)
    positions = jnp.broadcast_to(jnp.arange(11), (2, 11))
    want = forward(params, cfg, tokens, positions)
    cache = init_cache(cfg, 2, 16)
    cache = prefill(params, cfg, tokens[:, :5], cache)
    # a rejected draft: junk written at 5..8, rolled back by writing again from 5
    _, cache = forward_cached(params, cfg, jnp.full((2, 4), 7), cache, jnp.array([5, 5]))
    got = []
    for lo, hi in ((5, 8), (8, 9), (9, 11)):
        logits, cache = forward_cached(params, cfg, tokens[:, lo:hi], cache, jnp.array([lo, lo]))
        got.append(logits)
    np.testing.assert_allclose(np.asarray(jnp.concatenate(got, axis=1)), np.asarray(want[:, 5:]), atol=1e-4,
                               rtol=1e-4)


@dataclasses.dataclass(frozen=True)
class Blocks32(Kernels):
    """Kernels that read every cache in blocks of 32 positions."""

    def cache_block(self, capacity):
        return 32


def test_attention_over_live_blocks_equals_the_whole_cache():
    """A cache read block by block up to the newest position (long caches) gives the logits of the masked
    product over all of it: rows at different positions, a capacity that is not a multiple of the block (the
    last block overlaps the one before), stale entries past each row's position."""
    cfg = CFGS[1]
    params = unstack_layers(tiny_params(cfg, seed=6, scale=3.0))
    tokens = jax.random.randint(jax.random.key(7), (2, 101), 0, cfg.vocab_size)
    junk = jax.random.randint(jax.random.key(8), (2, 104), 0, cfg.vocab_size)

    @jax.jit(static_argnums=3)
    def logits(params, tokens, junk, kernels):  # capacity 104, blocks of 32: the 4th starts at 72, overlapping the 3rd
        cache = init_cache(cfg, 2, 104)
        _, cache = decoder.forward_cached(params, cfg, junk, cache, jnp.array([0, 0]), kernels=kernels)  # stale
        cache = decoder.prefill(params, cfg, tokens[:, :96], cache, kernels=kernels)
        return decoder.forward_cached(params, cfg, tokens[:, 96:], cache, jnp.array([96, 37]), kernels=kernels)[0]

    whole = logits(params, tokens, junk, Kernels())
    blocks = logits(params, tokens, junk, Blocks32(cache_blocks=True))
    np.testing.assert_allclose(np.asarray(blocks), np.asarray(whole), atol=1e-4, rtol=1e-4)


def test_kernels_follow_the_platform_asked_for():
    """The block loop (a trip count that depends on the data) and the few-row products are the CPU's; a GPU or
    TPU program reads whole caches and takes plain products, whatever machine compiles it."""
    cpu = Kernels.for_platform("cpu")
    assert [cpu.cache_block(c) for c in (128, 512, 1024, 1536, 4096)] == [None, 64, 64, None, 512]
    assert cpu.few_rows(64) and not cpu.few_rows(65)
    for platform in ("gpu", "cuda", "tpu"):
        kernels = Kernels.for_platform(platform)
        assert [kernels.cache_block(c) for c in (128, 512, 1024, 1536, 4096)] == [None] * 5
        assert not kernels.few_rows(1)


@pytest.mark.parametrize("shape", [(1, 1), (2, 1), (1, 3), (2, 5), (16,), (3, 24)])
def test_few_row_products_equal_the_plain_product(shape):
    """`out_major_product`'s CPU form for up to FEW_ROWS rows (w @ x^T behind a barrier, then transposed back)
    equals x @ w^T for a weight stored [out, in], whatever the leading axes; 72 rows take the plain form."""
    r = np.random.default_rng(len(shape) * 100 + shape[-1])
    w = jnp.asarray(r.standard_normal((48, 40)), jnp.float32)
    for lead in (shape, (72,)):
        x = jnp.asarray(r.standard_normal((*lead, 40)), jnp.float32)
        got = jax.jit(layers.out_major_product, static_argnums=2)(x, w, Kernels.for_platform("cpu"))
        assert got.shape == (*lead, 48)
        np.testing.assert_allclose(np.asarray(got), np.asarray(x) @ np.asarray(w).T, atol=1e-4, rtol=1e-5)


def test_attention_in_query_blocks_equals_the_whole_product():
    """Under a mask where no token sees a later one, attention in query blocks (each over the keys up to its
    block's end, the last block partial) equals the one [T, T] product wherever a query sees some key; under
    a mask that looks ahead it does not (so the test can fail)."""
    r = np.random.default_rng(3)
    qg, k, v = (jnp.asarray(r.standard_normal(s), jnp.float32) for s in
                [(2, 3, 2, 21, 8), (2, 3, 21, 8), (2, 3, 21, 8)])
    lower = np.tril(r.random((2, 21, 21)) < 0.5) | np.eye(21, dtype=bool)
    lower[1, 17:] = False  # padding queries: see nothing
    attend, in_blocks = jax.jit(attention.attend), jax.jit(attention.attend_lower_triangular, static_argnums=4)
    whole = np.asarray(attend(qg, k, v, jnp.asarray(lower)))
    blocks = np.asarray(in_blocks(qg, k, v, jnp.asarray(lower), 4))
    np.testing.assert_allclose(blocks[:, :, :, :17], whole[:, :, :, :17], atol=1e-6)
    np.testing.assert_allclose(blocks[0], whole[0], atol=1e-6)
    ahead = lower.copy()
    ahead[0, 2, 9] = True
    assert not np.allclose(np.asarray(in_blocks(qg, k, v, jnp.asarray(ahead), 4)),
                           np.asarray(attend(qg, k, v, jnp.asarray(ahead))), atol=1e-3)


@pytest.mark.parametrize("length", [5, 8, 24])
def test_chunked_prefill_equals_one_shot_prefill(length):
    """A prompt written 8 tokens at a time (one compiled chunk, attending to the cache so far) leaves the same
    cache as one pass, and the next token's logits agree: prompts shorter than, equal to and longer than a chunk."""
    cfg = CFGS[1]
    params = unstack_layers(tiny_params(cfg, seed=4, scale=3.0))
    tokens = jax.random.randint(jax.random.key(5), (2, length + 1), 0, cfg.vocab_size)
    prompt, nxt = tokens[:, :length], tokens[:, length:]
    one = prefill(params, cfg, prompt, init_cache(cfg, 2, 32))
    chunked = prefill(params, cfg, prompt, init_cache(cfg, 2, 32), chunk=8)
    for a, b in zip(one, chunked):
        np.testing.assert_allclose(np.asarray(a.k[:, :, :length]), np.asarray(b.k[:, :, :length]), atol=1e-5)
        np.testing.assert_allclose(np.asarray(a.v[:, :, :length]), np.asarray(b.v[:, :, :length]), atol=1e-5)
    start = jnp.full((2,), length, jnp.int32)
    want = forward(params, cfg, tokens, jnp.broadcast_to(jnp.arange(length + 1), tokens.shape))[:, -1]
    for cache in (one, chunked):
        got = forward_cached(params, cfg, nxt, cache, start)[0][:, 0]
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)


def test_chunked_prefill_needs_whole_chunks():
    cfg = CFGS[0]
    params = unstack_layers(tiny_params(cfg, seed=4))
    with pytest.raises(ValueError, match="multiple of the chunk"):
        decoder.prefill(params, cfg, jnp.zeros((1, 12), jnp.int32), init_cache(cfg, 1, 16), chunk=8)


def test_forward_cached_refuses_the_stacked_layout():
    cfg = tiny_config()
    with pytest.raises(ValueError, match="unstack_layers"):
        decoder.forward_cached(tiny_params(cfg, 0), cfg, jnp.zeros((1, 1), jnp.int32), init_cache(cfg, 1, 8),
                               jnp.zeros((1,), jnp.int32))


def test_cache_write_puts_each_row_at_its_own_offset():
    buf = jnp.zeros((2, 1, 6, 1))
    new = jnp.arange(1, 7, dtype=jnp.float32).reshape(2, 1, 3, 1)
    out = write(LayerCache(buf, buf), new, -new, jnp.array([0, 2]))
    assert out.k[:, 0, :, 0].tolist() == [[1, 2, 3, 0, 0, 0], [0, 0, 4, 5, 6, 0]]
    assert out.v[:, 0, :, 0].tolist() == [[-1, -2, -3, 0, 0, 0], [0, 0, -4, -5, -6, 0]]


def test_draft_window_reads_the_last_committed_tokens_then_fill():
    seq = jnp.arange(10, 30).reshape(2, 10)
    tokens, start = window(seq, jnp.array([6, 1]), width=4, back=2, fill=-1)
    assert start.tolist() == [4, 0]
    assert tokens.tolist() == [[14, 15, 16, -1], [20, 21, -1, -1]]
