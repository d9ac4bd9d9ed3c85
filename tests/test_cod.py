"""COD sampling, packing, and the packed-COD loss == the loss under the explicit full PARD mask (the reference
layout: the sequence followed by k-1 blocks of mask tokens)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.models import masks
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import forward
from pard_jax.training import cod, packing
from pard_jax.training import step as train_step
from tests import tiny_models

MASK_ID = 3
TINY = ModelConfig(architecture="LlamaForCausalLM", vocab_size=48, hidden_size=32, intermediate_size=64, num_layers=2,
                   num_heads=4, num_kv_heads=2, head_dim=8, rms_norm_eps=1e-5, max_position_embeddings=512)


# --------------------------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("length,k,r,r_min,seed", [
    (200, 8, 0.7, 0.2, 0), (57, 4, 0.5, 0.3, 1), (31, 12, 0.9, 0.05, 2), (10, 8, 0.7, 0.2, 3), (100, 1, 0.7, 0.2, 4),
])
def test_cod_keeps_the_chain_and_the_budget(length, k, r, r_min, seed):
    kept = cod.sample_kept(length, k, r, r_min, np.random.default_rng(seed))
    assert len(kept) == k
    np.testing.assert_array_equal(kept[0], np.arange(length))
    for j in range(1, k):
        prev = set(kept[j - 1].tolist())
        assert all(t - 1 in prev for t in kept[j].tolist()), f"block {j} breaks the chain"
        assert np.all(kept[j] <= length - 2) and np.all(np.diff(kept[j]) > 0)
        candidates = sum(1 for t in kept[j - 1].tolist() if t + 1 <= length - 2)
        frac = max(r ** j, r_min)
        assert kept[j].size == min(round(frac * max(length - 1 - j, 0)), candidates)
        assert abs(kept[j].size - frac * length) <= j + 2  # max(r**j, r_min)·L, less the positions without anchor/target


def test_cod_token_count_follows_the_reference_budget():
    length = 2000
    kept = cod.sample_kept(length, 8, 0.7, 0.2, np.random.default_rng(0))
    per_block = [block.size / length for block in kept]
    np.testing.assert_allclose(per_block, [max(0.7 ** j, 0.2) if j else 1.0 for j in range(8)], atol=0.005)
    assert sum(per_block) == pytest.approx(3.373, abs=0.01)  # vs 8 without COD
    full = cod.sample_kept(length, 8, 1.0, 1.0, np.random.default_rng(0))
    assert [block.size for block in full] == [length] + [length - 1 - j for j in range(1, 8)]


def test_cod_is_deterministic_given_the_rng():
    a = cod.sample_kept(300, 8, 0.7, 0.2, np.random.default_rng(7))
    b = cod.sample_kept(300, 8, 0.7, 0.2, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_kept_tokens_fields():
    ids = np.array([10, 11, 12, 13, 14], np.int32)
    targets = np.array([0, 0, 1, 1, 1], bool)
    kept = [np.arange(5, dtype=np.int32), np.array([1, 3], np.int32), np.array([2], np.int32)]
    ex = cod.kept_tokens(ids, targets, kept, MASK_ID)
    np.testing.assert_array_equal(ex["tokens"], [10, 11, 12, 13, 14, MASK_ID, MASK_ID, MASK_ID])
    np.testing.assert_array_equal(ex["positions"], [0, 1, 2, 3, 4, 1, 3, 2])
    np.testing.assert_array_equal(ex["blocks"], [0, 0, 0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(ex["anchors"], [0, 1, 2, 3, 4, 0, 2, 0])
    # (j, t) predicts x_{t+1}; x_1 is not a target and x_5 does not exist.
    np.testing.assert_array_equal(ex["labels"], [-1, 12, 13, 14, -1, 12, 14, 13])


@pytest.mark.parametrize("bad", [dict(k=0), dict(r=0.0), dict(r=1.5), dict(r_min=0.0), dict(r_min=-0.1)])
def test_bad_pard_settings_are_user_errors(bad):
    from pard_jax.errors import UserError

    args = dict(k=8, r=0.7, r_min=0.2) | bad
    with pytest.raises(UserError, match="pard."):
        cod.validate_pard(**args)


# --------------------------------------------------------------------------------------------- packing

def _example(n, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.integers(0, 40, n).astype(np.int32) for k in packing.FIELDS}


def test_packing_keeps_examples_whole_and_pads():
    sizes = [70, 10, 33, 64, 5, 90, 41, 12]
    examples = [_example(n, i) for i, n in enumerate(sizes)]
    rows = packing.pack(examples, 100)
    assert len(rows) == 4  # 325 tokens: first-fit decreasing reaches the minimum, ceil(3.25)
    seen = []
    for row in rows:
        assert all(row[k].shape == (100,) and row[k].dtype == np.int32 for k in packing.ROW_FIELDS)
        seg = row["segments"]
        pad = seg == 0
        assert np.all(row["labels"][pad] == -1)
        for s in range(1, seg.max() + 1):
            idx = np.flatnonzero(seg == s)
            assert np.all(np.diff(idx) == 1)  # contiguous
            match = [i for i, ex in enumerate(examples) if np.array_equal(ex["tokens"], row["tokens"][idx])
                     and np.array_equal(ex["labels"], row["labels"][idx])]
            seen += match[:1]
    assert sorted(seen) == list(range(len(sizes)))


def test_packing_refuses_an_example_longer_than_a_row():
    from pard_jax.errors import UserError

    with pytest.raises(UserError, match="row_length"):
        packing.pack([_example(120, 0)], 100)


# ---------------------------------------------------------------------- packed COD == explicit full mask

@pytest.fixture(scope="module")
def params():
    return tiny_models.init_params(TINY, jax.random.key(1))


def full_pard_mask(length: int, k: int) -> np.ndarray:
    """[k·L, k·L] mask of the reference layout: the sequence, then k-1 blocks of L mask tokens.

    Built block by block from the chain rule: query block jq at t sees block 0 up to its anchor
    t - jq, and, in each mask block jk <= jq, the one token with the same anchor.
    """
    n = k * length
    mask = np.zeros((n, n), bool)
    t = np.arange(length)
    for jq in range(k):
        for jk in range(k):
            if jk == 0:
                sub = t[None, :] <= (t[:, None] - jq)
            elif jk <= jq:
                sub = (t[None, :] - jk) == (t[:, None] - jq)
            else:
                continue
            mask[jq * length:(jq + 1) * length, jk * length:(jk + 1) * length] = sub
    return mask


@functools.partial(jax.jit, static_argnums=1)
def _jit_forward(params, cfg, tokens, positions, mask):
    return forward(params, cfg, tokens, positions, new_mask=mask)


def explicit_mask_sums(params, cfg, ids, targets, kept, k, layout_length=None):
    """Loss sum and per-block hits over the kept tokens, from one forward of the full k·L layout.

    `layout_length` >= L appends filler tokens to the sequence (one compiled shape for several
    examples); under the chain mask no token at t < L sees a token at t >= L.
    """
    length = ids.shape[0]
    n = layout_length or length
    seq = np.concatenate([ids, np.full(n - length, 7, np.int32)])
    tokens = np.concatenate([seq] + [np.full(n, MASK_ID, np.int32)] * (k - 1))
    positions = np.tile(np.arange(n, dtype=np.int32), k)
    mask = full_pard_mask(n, k)
    logits = _jit_forward(params, cfg, jnp.asarray(tokens)[None], jnp.asarray(positions)[None],
                          jnp.asarray(mask)[None])[0]
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1), np.float64)
    pred = np.asarray(jnp.argmax(logits, axis=-1))
    loss, hits, counts = 0.0, np.zeros(k), np.zeros(k)
    for j, ts in enumerate(kept):
        for t in ts.tolist():
            if t + 1 < length and targets[t + 1]:
                i = j * n + t
                loss -= logp[i, ids[t + 1]]
                hits[j] += pred[i] == ids[t + 1]
                counts[j] += 1
    return loss, hits, counts


def _tiny_examples(lengths, seed):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        ids = rng.integers(4, TINY.vocab_size, n).astype(np.int32)
        targets = np.ones(n, bool)
        targets[: rng.integers(0, n // 2)] = False  # a prompt that is not trained
        out.append((ids, targets))
    return out


# query_block: attention over the packed row in blocks of that many queries (None: one [T, T] product).
@pytest.mark.parametrize("k,r,r_min,lengths,query_block", [
    (4, 0.7, 0.2, (23, 9, 16), 8),
    (8, 0.7, 0.2, (30, 12), None),
    (3, 0.5, 0.5, (40,), 5),
    (6, 0.9, 0.1, (17, 25), 16),
    (2, 1.0, 1.0, (21, 8), 8),
    (1, 0.7, 0.2, (19, 6), None),
])
def test_packed_cod_loss_equals_explicit_full_mask_loss(k, r, r_min, lengths, query_block, params):
    rng = np.random.default_rng(sum(lengths) + k)
    examples = _tiny_examples(lengths, k)
    kept = [cod.sample_kept(len(ids), k, r, r_min, rng) for ids, _ in examples]
    cod_examples = [cod.kept_tokens(ids, tg, ex_kept, MASK_ID) for (ids, tg), ex_kept in zip(examples, kept)]
    row_length = sum(e["tokens"].size for e in cod_examples) + 5  # one row, with padding
    (row,) = packing.pack(cod_examples, row_length)
    batch = {name: jnp.asarray(v)[None] for name, v in row.items()}
    # No token of a packed row sees a later one (what attention in query blocks relies on).
    mask = np.asarray(masks.pard_attention_mask(batch["segments"], batch["blocks"], batch["anchors"],
                                                batch["positions"]))[0]
    assert not np.triu(mask, 1).any()
    loss_sum, stats = jax.jit(lambda p, b: train_step.loss_sums(p, TINY, b, k, query_block=query_block))(params, batch)

    want_loss, want_hits, want_counts = 0.0, np.zeros(k), np.zeros(k)
    for (ids, tg), ex_kept in zip(examples, kept):
        l, h, c = explicit_mask_sums(params, TINY, ids, tg, ex_kept, k, layout_length=max(lengths))
        want_loss, want_hits, want_counts = want_loss + l, want_hits + h, want_counts + c
    assert float(loss_sum) == pytest.approx(want_loss, rel=2e-5)
    np.testing.assert_array_equal(np.asarray(stats["count_by_block"]), want_counts)
    np.testing.assert_array_equal(np.asarray(stats["correct_by_block"]), want_hits)
    assert float(stats["tokens"]) == want_counts.sum()


def test_breaking_the_chain_changes_the_loss(params):
    """The equality above needs COD's chain property: drop a kept token's predecessor and it fails."""
    ((ids, tg),) = _tiny_examples((20,), 0)
    tg[:] = True
    kept = [np.arange(20, dtype=np.int32), np.array([5, 9], np.int32), np.array([6, 10], np.int32)]
    broken = [kept[0], np.array([5], np.int32), kept[2]]  # (2, 10) has lost (1, 9)
    ex = cod.kept_tokens(ids, tg, broken, MASK_ID)
    (row,) = packing.pack([ex], ex["tokens"].size)
    batch = {name: jnp.asarray(v)[None] for name, v in row.items()}
    loss_sum, _ = jax.jit(lambda p, b: train_step.loss_sums(p, TINY, b, 3))(params, batch)
    want, _, _ = explicit_mask_sums(params, TINY, ids, tg, broken, 3)
    assert abs(float(loss_sum) - want) > 1e-4


def test_sub_vocabulary_head_loss_covers_only_its_ids():
    """With draft_vocab, labels are indices into it: the loss equals cross-entropy over the head's logits
    for labels inside the sub-vocabulary, and labels outside carry no loss."""
    import dataclasses

    cfg = dataclasses.replace(ModelConfig(architecture="LlamaForCausalLM", vocab_size=32, hidden_size=16,
                                          intermediate_size=24, num_layers=1, num_heads=2, num_kv_heads=1,
                                          head_dim=8, tie_word_embeddings=True), draft_vocab=(2, 3, 7, 11))
    params = tiny_models.init_params(cfg, jax.random.key(0))
    tokens = jnp.array([[1, 2, 3, 7, 5, 6]])
    labels = jnp.array([[2, 3, 7, 5, -1, 11]])  # 5 is outside the sub-vocabulary
    batch = {"tokens": tokens, "positions": jnp.arange(6)[None], "blocks": jnp.zeros((1, 6), jnp.int32),
             "anchors": jnp.arange(6)[None], "segments": jnp.ones((1, 6), jnp.int32), "labels": labels}
    loss, stats = jax.jit(lambda p, b: train_step.loss_sums(p, cfg, b, k=1))(params, batch)
    logits = tiny_models.forward(params, cfg, tokens, batch["positions"])[0]  # [6, 4]
    index = {2: 0, 3: 1, 7: 2, 11: 3}
    want = sum(float(jax.nn.logsumexp(logits[t]) - logits[t, index[int(y)]])
               for t, y in enumerate(labels[0]) if int(y) in index)
    assert float(stats["tokens"]) == 4
    assert float(loss) == pytest.approx(want, rel=1e-5)
