"""PARD-2 (target-dependent drafts): the target's hidden features, the feature rule in the decode loop, and
lossless greedy and sampled decoding with a draft that reads them."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.models.config import ModelConfig, Pard2
from pard_jax.models.decoder import forward
from pard_jax.models.kernels import Kernels
from pard_jax.speculative.generator import PRNG_IMPL, Generator
from pard_jax.speculative.loop import DecodeLoop, run_jit, start_jit
from pard_jax.speculative.sampling import SamplingParams
from tests.tiny_models import tiny_config, tiny_params

CFG = tiny_config()
LAYERS = (-1, 1, 0)  # the final norm's output, the first layer's, the embeddings
DRAFT_CFG = dataclasses.replace(CFG, pard2=Pard2(LAYERS, 3 * CFG.hidden_size, scale=1.0))
MASK = 3
CPU = Kernels.for_platform("cpu")
PROMPTS = [[5, 9, 2, 33, 17], [1], list(range(10, 40))]


@pytest.fixture(scope="module")
def models():
    target = tiny_params(CFG, 0)
    draft = tiny_params(DRAFT_CFG, 1, scale=3.0)
    return target, draft


def test_pard2_config_round_trips_and_reads_the_official_keys():
    d = DRAFT_CFG.to_hf_dict()
    assert d["spd_type"] == "pard2" and d["pard2"] is True and d["pard2_target_layers"] == [-1, 1, 0]
    assert ModelConfig.from_hf_dict(d) == DRAFT_CFG
    legacy = {k: v for k, v in d.items() if not k.startswith("pard2")} | {"target_layers": [-1], "pard_target_dim": 32}
    assert ModelConfig.from_hf_dict(legacy).pard2 == Pard2((-1,), 32, 0.02, False)


def _loop(mode="pard", k=4, td=True, max_new=24, sp=SamplingParams(), eos=()):
    return DecodeLoop(CFG, mode=mode, k=k if mode != "ar" else 0, draft_cfg=DRAFT_CFG if mode != "ar" else None,
                      mask_id=MASK, sampling=sp, max_new_tokens=max_new, eos_ids=eos, kernels=CPU,
                      target_dependent=td and mode == "pard")


def test_the_loop_keeps_each_rows_features_of_the_draft_window(models):
    """After every iteration a row's recent features are the target's hidden features at positions
    last-k-1 .. last-1 of its committed sequence (zeros before position 0), as one uncached target pass over
    that sequence gives them: rows at different lengths, accepting different numbers of tokens."""
    target, draft = models
    loop, k = _loop(k=3, max_new=16), 3
    prompts = np.zeros((2, 32), np.int32)
    prompts[0, :5], prompts[1, :2] = [5, 9, 2, 33, 17], [1, 7]
    lengths = jnp.array([5, 2], jnp.int32)
    placed = Generator(loop, target, draft)  # params in the decoding layout, placed once
    tp, dp = placed.target_params, placed.draft_params
    state = start_jit(loop, tp, dp, jnp.asarray(prompts), lengths, jnp.zeros(2, bool),
                      jax.random.key(0, impl=PRNG_IMPL))
    for _ in range(5):
        for b in range(2):
            last = int(state.last[b])
            seq = jnp.asarray(state.seq[b:b + 1, :last + 1])
            _, feats = forward(tp, CFG, seq, jnp.arange(last + 1)[None], feature_layers=LAYERS)
            want = np.zeros((k + 1, feats.shape[-1]), np.float32)
            for i in range(k + 1):
                p = last - k - 1 + i
                if p >= 0:
                    want[i] = feats[0, p]
            np.testing.assert_allclose(np.asarray(state.features[b]), want, atol=1e-4, rtol=1e-4)
        state = run_jit(loop, tp, dp, state, jnp.int32(1))


@pytest.mark.parametrize("k", [1, 4])
def test_greedy_target_dependent_pard_equals_target(models, k):
    target, draft = models
    expected = [r.token_ids for r in Generator(_loop("ar"), target, batch_size=3).generate(PROMPTS)]
    td = Generator(_loop(k=k), target, draft, batch_size=3).generate(PROMPTS)
    assert [r.token_ids for r in td] == expected
    alone = [Generator(_loop(k=k), target, draft).generate([p])[0].token_ids for p in PROMPTS]
    assert alone == expected
    ti = Generator(_loop(k=k, td=False), target, draft, batch_size=3).generate(PROMPTS)
    assert [r.token_ids for r in ti] == expected
    # the features change the drafts (so this test can fail): TD and TI accept differently
    assert [r.accepted_at for r in td] != [r.accepted_at for r in ti]


def test_target_dependent_sampling_has_the_targets_distribution():
    """Sampled TD PARD: the first two tokens' joint distribution is the target's (chi-square, 12 ids)."""
    from tests.test_sampling import PROMPT, chi2_pvalue

    cfg = tiny_config(vocab=12)
    draft_cfg = dataclasses.replace(cfg, pard2=Pard2(LAYERS, 3 * cfg.hidden_size, scale=1.0))
    target, draft = tiny_params(cfg, 0, scale=4.0), tiny_params(draft_cfg, 7, scale=4.0)
    sp = SamplingParams(temperature=1.0)
    V, samples = cfg.vocab_size, 3000
    seqs = jnp.array([PROMPT + [x] for x in range(V)])
    logits = forward(target, cfg, seqs, jnp.broadcast_to(jnp.arange(seqs.shape[1]), seqs.shape))
    probs = np.asarray(jax.nn.softmax(logits[0, -2])[:, None] * jax.nn.softmax(logits[:, -1], axis=-1))
    loop = DecodeLoop(cfg, mode="pard", k=3, draft_cfg=draft_cfg, mask_id=V - 1, sampling=sp, max_new_tokens=2,
                      kernels=CPU, target_dependent=True)
    counts = np.zeros((V, V))
    for r in Generator(loop, target, draft, batch_size=samples).generate([PROMPT] * samples, seed=5):
        counts[r.token_ids[0], r.token_ids[1]] += 1
    assert chi2_pvalue(counts, probs) > 1e-3


def test_target_dependent_drafting_needs_a_pard2_draft():
    with pytest.raises(Exception, match="PARD-2 draft"):
        DecodeLoop(CFG, mode="pard", k=2, draft_cfg=CFG, mask_id=MASK, target_dependent=True)


def test_a_target_dependent_generator_switches_to_ar_and_back(models):
    """--compare-ar's path: TD pard -> ar (no draft, no features: the plain ar program) -> pard, TD again."""
    target, draft = models
    td = Generator(_loop(k=3), target, draft)
    ar = td.with_mode("ar")
    assert ar.loop == _loop("ar") and not ar.loop.target_dependent
    again = ar.with_mode("pard", 3)
    assert again.loop.target_dependent and again.loop == td.loop
    assert ar.generate(PROMPTS[:1])[0].token_ids == again.generate(PROMPTS[:1])[0].token_ids
