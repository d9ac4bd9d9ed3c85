"""Speculative sampling is lossless: its output has the target's distribution (chi-square tests)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from pard_jax.speculative.generator import Generator
from pard_jax.speculative.loop import DecodeLoop
from pard_jax.speculative.sampling import SamplingParams, probabilities
from tests.tiny_models import forward, tiny_config, tiny_params

V = 12
CFG = tiny_config(vocab=V)
TARGET = tiny_params(CFG, 0, scale=4.0)
DRAFT = tiny_params(CFG, 7, scale=4.0)
# A draft that proposes only 6 of the 12 ids (a sub-vocabulary head over its own table's rows).
SUB_CFG = dataclasses.replace(CFG, draft_vocab=(0, 2, 3, 5, 8, 9))
SUB_DRAFT = {**DRAFT, "draft_head": DRAFT["embed"][jnp.asarray(SUB_CFG.draft_vocab)]}
PROMPT = [3, 1, 4, 1, 5]
SAMPLES = 3000


def exact_joint(params, sp: SamplingParams) -> np.ndarray:
    """[V, V] probability of the first two generated tokens under plain sampling from `params`."""
    seqs = jnp.array([PROMPT + [x] for x in range(V)])
    pos = jnp.broadcast_to(jnp.arange(seqs.shape[1]), seqs.shape)
    logits = forward(params, CFG, seqs, pos)
    p1 = probabilities(logits[0, -2], sp)  # after the prompt
    p2 = probabilities(logits[:, -1], sp)  # after prompt + x1
    return np.asarray(p1[:, None] * p2)


def sample_pairs(mode, k, sp, seed=0, sub_vocab=False) -> np.ndarray:
    draft_cfg, draft = (SUB_CFG, SUB_DRAFT) if sub_vocab else (CFG, DRAFT)
    loop = DecodeLoop(CFG, mode=mode, k=k, draft_cfg=draft_cfg if mode != "ar" else None, mask_id=V - 1,
                      sampling=sp, max_new_tokens=2)
    gen = Generator(loop, TARGET, draft if mode != "ar" else None, batch_size=SAMPLES)
    res = gen.generate([PROMPT] * SAMPLES, seed=seed)
    counts = np.zeros((V, V))
    for r in res:
        counts[r.token_ids[0], r.token_ids[1]] += 1
    return counts


def chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square p-value, pooling cells whose expected count is below 5."""
    expected = probs.ravel() * counts.sum()
    observed = counts.ravel()
    small = expected < 5
    e = np.append(expected[~small], expected[small].sum())
    o = np.append(observed[~small], observed[small].sum())
    keep = e > 0
    if np.any(o[~keep] > 0):
        return 0.0  # a sample where the distribution has no mass at all
    return float(stats.chisquare(o[keep], e[keep] * o[keep].sum() / e[keep].sum()).pvalue)


@pytest.mark.parametrize("mode,k,sp,sub_vocab", [
    ("ar", 0, SamplingParams(temperature=1.0), False),
    ("pard", 4, SamplingParams(temperature=1.0), False),
    ("sd", 3, SamplingParams(temperature=1.0), False),
    ("pard", 4, SamplingParams(temperature=0.7), False),
    ("pard", 4, SamplingParams(temperature=1.0, top_p=0.9), False),
    ("sd", 3, SamplingParams(temperature=1.0, top_k=5), False),
    ("pard", 4, SamplingParams(temperature=1.0), True),
    ("sd", 3, SamplingParams(temperature=0.7, top_p=0.9), True),
])
def test_speculative_sampling_matches_target_distribution(mode, k, sp, sub_vocab):
    counts = sample_pairs(mode, k, sp, sub_vocab=sub_vocab)
    p = exact_joint(TARGET, sp)
    assert chi2_pvalue(counts, p) > 1e-4
    # The test has power: the same samples clearly reject the draft's own distribution.
    assert chi2_pvalue(counts, exact_joint(DRAFT, sp)) < 1e-6


def test_top_p_and_top_k_truncate():
    logits = jnp.log(jnp.array([0.5, 0.3, 0.15, 0.05]))
    assert np.allclose(probabilities(logits, SamplingParams(1.0, top_p=0.7)), [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    assert np.allclose(probabilities(logits, SamplingParams(1.0, top_k=1)), [1, 0, 0, 0])
    assert np.allclose(probabilities(logits, SamplingParams(1.0)), [0.5, 0.3, 0.15, 0.05], atol=1e-6)


def test_acceptance_rule_keeps_exact_distribution_for_one_step():
    """accept_sampling on fixed p, q: the first token's distribution is p (many independent trials)."""
    from pard_jax.speculative.steps import accept_sampling

    p = jnp.array([[0.6, 0.3, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])[None]  # [1, k+1=2, 4]
    q = jnp.array([[0.1, 0.1, 0.4, 0.4]])[None]  # [1, k=1, 4]
    n = 20000
    keys = jax.random.split(jax.random.key(0), n)
    drafts = jax.vmap(lambda kk: jax.random.categorical(kk, jnp.log(q[0, 0])))(keys).astype(jnp.int32)
    acc, nxt = jax.vmap(lambda kk, d: accept_sampling(kk, d.reshape(1, 1), q, p))(
        jax.random.split(jax.random.key(1), n), drafts)
    first = np.where(np.asarray(acc[:, 0]) >= 1, np.asarray(drafts), np.asarray(nxt[:, 0]))
    counts = np.bincount(first, minlength=4)
    assert counts[3] == 0
    assert stats.chisquare(counts[:3], np.array([0.6, 0.3, 0.1]) * n).pvalue > 1e-4
