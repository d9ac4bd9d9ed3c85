"""PARD-2 training: packed COD rows with the frozen target's features, teacher distributions and CAT weights
equal a per-example computation with the explicit PARD mask; the config and packing rules around it; the
projection's preconditioning; a draft trained with features beats one trained without."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pard_jax.errors import UserError
from pard_jax.models import masks
from pard_jax.models.config import Pard2
from pard_jax.training import cod, packing, pard2
from pard_jax.training import step as train_step
from pard_jax.training import trainer
from pard_jax.models.decoder import forward
from tests.tiny_models import tiny_config, tiny_params

TARGET = tiny_config(vocab=40, layers=2)
LAYERS = (-1, 1)
DRAFT = dataclasses.replace(tiny_config(vocab=40, layers=1), pard2=Pard2(LAYERS, 2 * TARGET.hidden_size, 1.0))
K, MASK = 3, 39


def _examples():
    rng = np.random.default_rng(0)
    out = []
    for length, flag in ((13, 1), (9, 0), (11, 1)):
        ids = rng.integers(3, 38, length).astype(np.int32)
        targets = np.ones(length, bool)
        targets[:2] = False  # a prompt: no loss on predicting its second token
        ex = cod.cod_example(ids, targets, K, 0.7, 0.3, MASK, rng)
        ex["features"] = np.full_like(ex["tokens"], flag)
        out.append((ids, ex))
    return out


def _reference(draft_params, target_params, ids, ex, obj):
    """One example on its own: the target over its sequence, features / teacher / CAT by definition, the draft
    under the explicit PARD mask of its kept tokens."""
    L = ids.shape[0]
    logits_t, feats = forward(target_params, TARGET, jnp.asarray(ids)[None], jnp.arange(L)[None],
                              feature_layers=LAYERS)
    logits_t, feats = np.asarray(logits_t[0]), np.asarray(feats[0])
    logp = np.asarray(jax.nn.log_softmax(logits_t, axis=-1))
    features, teacher, cat = [], [], []
    for j, t, a in zip(ex["blocks"], ex["positions"], ex["anchors"]):
        features.append(feats[a - 1] if a >= 1 and ex["features"][0] else np.zeros(feats.shape[1], np.float32))
        teacher.append(logp[t])
        cat.append(np.prod([np.exp(logp[u - 1, ids[u]]) for u in range(a + 1, t + 1)]))
    n = ex["tokens"].shape[0]
    seg = jnp.ones((1, n), jnp.int32)
    mask = masks.pard_attention_mask(seg, jnp.asarray(ex["blocks"])[None], jnp.asarray(ex["anchors"])[None],
                                     jnp.asarray(ex["positions"])[None])
    logits = forward(draft_params, DRAFT, jnp.asarray(ex["tokens"])[None], jnp.asarray(ex["positions"])[None],
                     new_mask=mask, features=jnp.asarray(np.stack(features))[None])
    logq, logp = np.asarray(jax.nn.log_softmax(logits[0], axis=-1)), np.stack(teacher)
    valid = ex["labels"] >= 0
    ce = np.where(valid, -logq[np.arange(n), np.maximum(ex["labels"], 0)], 0.0)
    kd = np.where(valid, np.sum(np.exp(logp) * (logp - logq), axis=-1), 0.0)  # KL(target || draft)
    w = np.where(valid, np.array(cat), 0.0)
    return np.sum(w * (obj.ce_alpha * np.asarray(ce) + obj.kd_alpha * np.asarray(kd))), w.sum()


def test_packed_pard2_rows_equal_the_per_example_computation():
    target_params, draft_params = tiny_params(TARGET, 0, scale=3.0), tiny_params(DRAFT, 1, scale=3.0)
    examples = _examples()
    obj = pard2.Objective(TARGET, base_length=40, ce_alpha=0.3, kd_alpha=1.0)
    rows = packing.pack([ex for _, ex in examples], 128, base_length=obj.base_length)
    assert len(rows) == 1 and rows[0]["segments"].max() == 3  # all three in one row, in order
    batch = {k: jnp.asarray(v)[None] for k, v in rows[0].items()}
    loss_sum, stats = jax.jit(lambda p, b, t: train_step.loss_sums(p, DRAFT, b, K, target_params=t, objective=obj))(
        draft_params, batch, target_params)
    want = [_reference(draft_params, target_params, ids, ex, obj) for ids, ex in examples]
    np.testing.assert_allclose(float(loss_sum), sum(w[0] for w in want), rtol=2e-4)
    np.testing.assert_allclose(float(stats["weight"]), sum(w[1] for w in want), rtol=2e-5)
    # the hit counts apart for the sequences that keep their features (the first and third)
    featured = sum(int(np.sum(ex["labels"] >= 0)) for _, ex in examples if ex["features"][0])
    assert float(jnp.sum(stats["count_by_block_td"])) == featured < float(jnp.sum(stats["count_by_block"]))
    m = train_step.metrics_from_sums(loss_sum, stats)
    np.testing.assert_allclose(m["hits_by_block_td"] + m["hits_by_block_ti"],
                               np.stack([stats["correct_by_block"], stats["count_by_block"]]))
    # the features matter: dropping them for every example changes the loss (so the test can fail)
    off = dict(batch, features=jnp.zeros_like(batch["features"]))
    assert abs(float(train_step.loss_sums(draft_params, DRAFT, off, K, target_params=target_params,
                                          objective=obj)[0]) - float(loss_sum)) > 1e-3


def test_a_log_record_divides_the_td_and_ti_sums_of_its_steps():
    """A step without TI sequences adds nothing to TI's accuracy (a mean of per-step ratios would add a 0)."""
    def step(td, ti):
        return {"loss": 1.0, "ce": 1.0, "kd": 1.0, "accuracy_by_block": np.zeros(2), "positions": 1.0, "kept": 1.0,
                "grad_norm": 1.0, "hits_by_block_td": np.asarray(td, float), "hits_by_block_ti": np.asarray(ti, float)}
    steps = [step([[3, 1], [4, 2]], [[0, 0], [0, 0]]), step([[1, 1], [4, 2]], [[2, 0], [4, 0]])]
    record = trainer._log_record(5, steps, 0.0, 1e-3)
    assert record["accuracy_by_block_td"] == [0.5, 0.5] and record["accuracy_by_block_ti"] == [0.5, None]


def test_rows_hold_at_most_base_length_real_tokens():
    examples = [ex for _, ex in _examples()]
    rows = packing.pack(examples, 128, base_length=20)  # 13 + 9 > 20: the three examples need three rows... or two
    assert all(int(np.sum((r["blocks"] == 0) & (r["segments"] > 0))) <= 20 for r in rows) and len(rows) >= 2
    with pytest.raises(UserError, match="pard2.base_length=12"):
        packing.pack(examples, 128, base_length=12)


def test_proj_update_scale_evens_out_feature_scales():
    rms = np.array([1.0, 2.0, 4.0, 0.0])  # a dead feature: floored at 1e-3 x the median, not divided by zero
    scale = pard2.proj_update_scale(jnp.asarray(rms ** 2 * 5), jnp.asarray(5.0))
    np.testing.assert_allclose(np.asarray(scale), [1.5, 0.75, 0.375, 1000.0], rtol=1e-6)


def test_preconditioning_and_proj_lr_scale_only_target_projs_updates():
    target_params, draft_params = tiny_params(TARGET, 0, scale=3.0), tiny_params(DRAFT, 1, scale=3.0)
    rows = packing.pack([ex for _, ex in _examples()], 128, base_length=40)
    batch = {k: jnp.asarray(v)[None, None] for k, v in rows[0].items()}  # [A=1, B=1, T]
    sgd = optax.sgd(1.0)  # the update is the gradient itself, so the factors show exactly

    def delta(precondition, multiplier=1.0):
        obj = pard2.Objective(TARGET, base_length=40, precondition=precondition, proj_lr_multiplier=multiplier)
        new, _, _ = train_step.train_step(draft_params, sgd.init(draft_params), batch, target_params, cfg=DRAFT,
                                          optimizer=sgd, k=K, objective=obj)
        return jax.tree.map(lambda a, b: np.asarray(a - b), new, draft_params)

    plain, scaled = delta(False), delta(True)
    unbatched = jax.tree.map(lambda x: x[0], batch)
    features, _, _ = pard2.target_signals(target_params, pard2.Objective(TARGET, 40), unbatched, LAYERS,
                                          dtype=jnp.float32, query_block=None, teacher=False)
    sums = pard2.feature_sums(features)
    want = np.asarray(pard2.proj_update_scale(sums["feature_sq"], sums["featured"]))
    assert want.max() / want.min() > 1.5  # the tiny target's features differ in scale, so the test can fail
    np.testing.assert_allclose(scaled["target_proj"]["kernel"], plain["target_proj"]["kernel"] * want[:, None],
                               rtol=1e-5, atol=1e-6)  # deltas of O(1) weights: float32 spacing
    faster = delta(True, multiplier=7.0)  # target_proj's own learning rate
    np.testing.assert_allclose(faster["target_proj"]["kernel"], scaled["target_proj"]["kernel"] * 7.0, rtol=1e-5,
                               atol=1e-5)
    rest = lambda t: {k: v for k, v in t.items() if k != "target_proj"}  # noqa: E731
    for other in (scaled, faster):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), rest(other), rest(plain))


def _second_order_rows(with_features: bool):
    """Packed rows of 16 texts over 8 symbols where each token follows from the two before it
    (x_{t+1} = x_{t-1} + 2 x_t + 1 mod 8): the target's feature at the position before the last real token
    tells the draft the token it would otherwise have to find by attention."""
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(16):
        s = list(rng.integers(0, 8, 2))
        while len(s) < 24:
            s.append((s[-2] + 2 * s[-1] + 1) % 8)
        ids = np.asarray(s, np.int32) + 3
        ex = cod.cod_example(ids, np.ones(len(ids), bool), K, 1.0, 1.0, MASK, rng)
        ex["features"] = np.full_like(ex["tokens"], int(with_features))
        examples.append(ex)
    rows = packing.pack(examples, 256, base_length=128)
    return {k: jnp.asarray(np.stack([r[k] for r in rows]))[None] for k in rows[0]}  # [A=1, B, T]


def test_a_draft_trained_with_features_beats_one_trained_without_on_its_training_text():
    """The same draft (target_proj from zero, as a warm start has it) trained the same 150 steps on the same
    text, once with the target's features (TD) and once with them dropped (TI)."""
    target = tiny_config(vocab=40, layers=2)
    draft_cfg = dataclasses.replace(tiny_config(vocab=40, layers=1), pard2=Pard2((-1,), target.hidden_size, 1.0))
    target_params, start = tiny_params(target, 0, scale=3.0), tiny_params(draft_cfg, 1, scale=3.0)
    start = dict(start, target_proj=jax.tree.map(jnp.zeros_like, start["target_proj"]))
    obj = pard2.Objective(target, base_length=128, ce_alpha=1.0, kd_alpha=0.0, cat=False)
    adam = optax.adam(1e-2)
    step = jax.jit(lambda p, s, b: train_step.train_step(p, s, b, target_params, cfg=draft_cfg, optimizer=adam,
                                                         k=K, objective=obj))
    scored = {}
    for mode, with_features in (("td", True), ("ti", False)):
        batch, params, state = _second_order_rows(with_features), start, adam.init(start)
        for _ in range(150):
            params, state, _ = step(params, state, batch)
        loss, stats = train_step.loss_sums(params, draft_cfg, jax.tree.map(lambda x: x[0], batch),
                                           K, target_params=target_params, objective=obj)
        scored[mode] = train_step.metrics_from_sums(loss, stats)
    td, ti = scored["td"], scored["ti"]
    assert float(td["loss"]) < 0.5 * float(ti["loss"]), (float(td["loss"]), float(ti["loss"]))
    assert np.all(np.asarray(td["accuracy_by_block"]) >= np.asarray(ti["accuracy_by_block"])), scored
