"""The decoding loop: greedy output equals the target's, batches, EOS, static shapes, no recompilation."""

from __future__ import annotations

import collections
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pard_jax.errors import UserError
from pard_jax.models.kernels import Kernels
from pard_jax.speculative import generator
from pard_jax.speculative.generator import Generator, prompt_bucket
from pard_jax.speculative.loop import DecodeLoop
from pard_jax.speculative.sampling import SamplingParams
from tests.tiny_models import tiny_config, tiny_params

CFG = tiny_config()
MASK = 3
CPU = Kernels.for_platform("cpu")  # the kernels generation on this machine uses (few-row products)


@pytest.fixture(scope="module")
def target():
    return tiny_params(CFG, 0)


@pytest.fixture(scope="module")
def weak_draft():
    return tiny_params(CFG, 1)


def run(target, mode, k, prompts, draft=None, max_new=24, eos=(), batch_size=1, chunk=0, seed=0):
    loop = DecodeLoop(CFG, mode=mode, k=k, draft_cfg=CFG if mode != "ar" else None, mask_id=MASK,
                      max_new_tokens=max_new, eos_ids=eos, kernels=CPU)
    gen = Generator(loop, target, draft, batch_size=batch_size, chunk_iterations=chunk)
    return gen.generate(prompts, seed=seed)


PROMPTS = [[5, 9, 2, 33, 17], [1], list(range(10, 40))]


@pytest.mark.parametrize("mode", ["sd", "pard"])
@pytest.mark.parametrize("k", [1, 4, 8])
@pytest.mark.parametrize("draft", ["weak", "target"])
def test_greedy_speculative_equals_target(target, weak_draft, mode, k, draft):
    expected = [r.token_ids for r in run(target, "ar", 0, PROMPTS, batch_size=3)]
    params = weak_draft if draft == "weak" else target
    for batch_size in (1, 3):
        got = run(target, mode, k, PROMPTS, draft=params, batch_size=batch_size)
        assert [r.token_ids for r in got] == expected
        assert all(r.num_generated == 24 for r in got)


@pytest.mark.parametrize("mode", ["sd", "pard"])
def test_greedy_with_a_sub_vocabulary_draft_equals_target(target, mode):
    """A draft that can propose only some ids (its head covers half the vocabulary) changes no token."""
    sub = dataclasses.replace(CFG, draft_vocab=tuple(range(0, CFG.vocab_size, 2)))
    draft = {**target, "draft_head": target["embed"][jnp.asarray(sub.draft_vocab)]}
    expected = [r.token_ids for r in run(target, "ar", 0, PROMPTS, batch_size=3)]
    loop = DecodeLoop(CFG, mode=mode, k=4, draft_cfg=sub, mask_id=MASK, max_new_tokens=24)
    got = Generator(loop, target, draft, batch_size=3).generate(PROMPTS)
    assert [r.token_ids for r in got] == expected
    # Only even ids are ever proposed, so an accepted draft token is always even.
    assert sum(r.accepted_at[0] for r in got) > 0


def test_sd_with_target_as_draft_accepts_everything(target):
    k = 4
    for r in run(target, "sd", k, PROMPTS, draft=target, batch_size=3):
        # 24 tokens at k+1 per call: 4 full iterations, then a last one cut by max_new_tokens.
        assert r.target_calls == 5
        assert r.accepted_at == [5, 5, 5, 5]
        assert r.mean_accepted == pytest.approx(24 / 5)


def test_pard_with_target_as_draft_accepts_first_position_always(target):
    # The first PARD draft token is the draft's ordinary next-token prediction.
    for r in run(target, "pard", 4, PROMPTS, draft=target, batch_size=3):
        assert r.accept_rate_by_position[0] == 1.0


def test_eos_inside_an_accepted_block_ends_the_row_there(target):
    full = run(target, "ar", 0, [PROMPTS[0]])[0].token_ids
    stop_at = next(i for i in range(3, len(full)) if full[i] not in full[:i])
    eos = (full[stop_at],)
    expected = full[:stop_at + 1]
    assert run(target, "ar", 0, [PROMPTS[0]], eos=eos)[0].token_ids == expected
    for mode in ("sd", "pard"):
        for k in (4, 8):
            r = run(target, mode, k, [PROMPTS[0]], draft=target, eos=eos)[0]
            assert r.token_ids == expected
            if mode == "sd":  # the draft equals the target: EOS arrives inside an accepted block
                assert r.target_calls < len(expected)


def test_max_new_tokens_is_never_exceeded_and_rows_finish_independently(target, weak_draft):
    full = run(target, "ar", 0, PROMPTS, batch_size=3)
    eos = (full[1].token_ids[2],)  # row 1 stops early, the others go on
    for mode in ("ar", "sd", "pard"):
        res = run(target, mode, 0 if mode == "ar" else 8, PROMPTS, draft=weak_draft, eos=eos, batch_size=3,
                  max_new=13)
        for r, f in zip(res, full):
            cut = next((i + 1 for i, t in enumerate(f.token_ids[:13]) if t in eos), 13)
            assert r.token_ids == f.token_ids[:cut]
            assert r.num_generated <= 13


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), lengths=st.lists(st.integers(1, 30), min_size=3, max_size=3),
       mode=st.sampled_from(["sd", "pard"]))
def test_greedy_equality_property(target, seed, lengths, mode):
    # Fixed k and batch bucket keep this to a few compilations; seeds and prompt lengths vary.
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, CFG.vocab_size, n).tolist() for n in lengths]
    draft = tiny_params(CFG, 1 + seed % 2)
    expected = [r.token_ids for r in run(target, "ar", 0, prompts, batch_size=4, max_new=12)]
    got = [r.token_ids for r in run(target, mode, 4, prompts, draft=draft, batch_size=4, max_new=12)]
    assert got == expected


def test_the_context_defaults_to_the_targets_own(target):
    """Without max_cache_len a prompt may fill the target's max_position_embeddings, and no more, before any
    program is compiled; max_cache_len lowers that bound."""
    cfg = dataclasses.replace(CFG, max_position_embeddings=40)
    loop = DecodeLoop(cfg, max_new_tokens=8)
    Generator(loop, target).check_prompt(32)
    with pytest.raises(UserError, match="needs 41 positions but the context is 40"):
        Generator(loop, target).generate([list(range(1, 34))])
    with pytest.raises(UserError, match="needs 32 positions but the context is 30"):
        Generator(loop, target, max_cache_len=30).check_prompt(24)


def test_prompt_buckets_are_powers_of_two_up_to_a_chunk_then_whole_chunks():
    assert [prompt_bucket(n, 512) for n in (1, 32, 33, 300, 512, 513, 1025, 2629, 6000)] == \
        [32, 32, 64, 512, 512, 1024, 1536, 3072, 6144]
    assert [prompt_bucket(n, 384) for n in (200, 300, 385)] == [256, 384, 768]
    assert prompt_bucket(3, 8) == 8  # a chunk below the smallest bucket


@pytest.mark.parametrize("mode,sampled", [("ar", False), ("sd", True), ("pard", False), ("pard", True)])
def test_mixed_prompt_lengths_in_a_batch_with_chunked_prefill(target, weak_draft, mode, sampled):
    """Prompts of 1 to 40 tokens in one batch, prefilled 8 tokens at a time (up to 5 chunks): each row decodes
    exactly as it does alone with a one-shot prefill, greedy and sampling (top-k 1 sampling is deterministic,
    so the sampling path must give the greedy tokens too)."""
    prompts = [[5, 9, 2], list(range(10, 50)), [7] * 17, [1]]
    expected = [r.token_ids for r in run(target, "ar", 0, prompts, max_new=12)]
    sp = SamplingParams(temperature=1.0, top_k=1) if sampled else SamplingParams()
    loop = DecodeLoop(CFG, mode=mode, k=0 if mode == "ar" else 4, draft_cfg=None if mode == "ar" else CFG,
                      mask_id=MASK, sampling=sp, max_new_tokens=12, prefill_chunk=8, kernels=CPU)
    got = Generator(loop, target, None if mode == "ar" else weak_draft, batch_size=4).generate(prompts, seed=3)
    assert [r.token_ids for r in got] == expected
    assert [r.prompt_tokens for r in got] == [len(p) for p in prompts]
    assert all(0 < r.prefill_seconds < r.seconds for r in got)


class CountingLowerings:
    """Stands in for a jitted program and counts how often it is lowered (= compiled)."""

    def __init__(self, jitted, counts: collections.Counter, name: str):
        self.jitted, self.counts, self.name = jitted, counts, name

    def lower(self, *args):
        self.counts[self.name] += 1
        return self.jitted.lower(*args)

    def __call__(self, *args):
        return self.jitted(*args)


def test_no_recompilation_across_iterations_chunks_and_prompt_lengths(target, weak_draft, monkeypatch):
    lowered = collections.Counter()
    monkeypatch.setattr(generator, "start_jit", CountingLowerings(generator.start_jit, lowered, "start"))
    monkeypatch.setattr(generator, "run_jit", CountingLowerings(generator.run_jit, lowered, "run"))
    generator.compiled_programs.cache_clear()  # programs of earlier tests would hide this test's compilations
    loop = DecodeLoop(CFG, mode="pard", k=4, draft_cfg=CFG, mask_id=MASK, max_new_tokens=20)
    gen = Generator(loop, target, weak_draft, batch_size=2, chunk_iterations=2)
    gen.generate([[1, 2, 3], [4] * 20])  # prompt bucket 32, many chunks
    gen.generate([[7] * 31, [8] * 9, [9, 9]])  # same buckets: batch of 2 then a batch of 1 (bucket 1)
    assert lowered == {"start": 2, "run": 2}  # batch buckets 2 and 1
    assert generator.compiled_programs.cache_info().misses == 2 and gen.compile_seconds > 0
    gen.generate([[5] * 25, [6] * 3])
    # A new Generator for the same loop (as bench and --compare-ar make with `with_mode`) shares the programs.
    again = gen.with_mode("pard", 4)
    again.generate([[3] * 7])
    assert lowered == {"start": 2, "run": 2} and again.compile_seconds == 0.0
