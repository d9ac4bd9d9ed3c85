"""The feature probe: its rows line up (h_t, f_{t-1}, x_{t+1}); the fit finds information planted in the
features and none where there is none; the program runs on a tiny PARD-2 pair and refuses bad input."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.cli import probe_features
from pard_jax.models.decoder import forward
from pard_jax.training import feature_probe
from tests.hf_tiny import make_pard2_pair
from tests.tiny_models import tiny_config, tiny_params

TARGET, DRAFT = tiny_config(vocab=40, layers=2), tiny_config(vocab=40, layers=1)


def test_rows_are_the_drafts_state_at_t_the_targets_features_at_t_minus_1_and_the_token_after_t():
    tp, dp = tiny_params(TARGET, 0), tiny_params(DRAFT, 1)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(3, 40, n).astype(np.int32) for n in (9, 12, 7)]
    scored = [np.arange(len(s)) >= 4 for s in seqs]  # answers start at 4
    data = feature_probe.collect(dp, DRAFT, tp, TARGET, seqs, scored, (-1, 1), batch=2)
    raw, hidden, labels = [], [], []
    for s in seqs:
        pos = jnp.arange(len(s))[None]
        _, f = forward(tp, TARGET, jnp.asarray(s)[None], pos, feature_layers=(-1, 1), head=False)
        h = forward(dp, DRAFT, jnp.asarray(s)[None], pos, head=False)
        t = np.arange(3, len(s) - 1)  # x_{t+1} is an answer token
        raw.append(np.asarray(f)[0, t - 1]), hidden.append(np.asarray(h)[0, t]), labels.append(s[t + 1])
    raw = np.concatenate(raw)
    np.testing.assert_allclose(data.features, raw / np.sqrt(np.mean(raw ** 2, axis=0) + 1e-6), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(data.hidden, np.concatenate(hidden), rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(data.labels, np.concatenate(labels))
    np.testing.assert_array_equal(data.sequence, np.repeat([0, 1, 2], [len(s) - 4 for s in seqs]))


def _planted(informative: bool, n=3000, vocab=16, dim=16):
    """Rows whose label a feature dimension names (or not), and a draft state that knows nothing."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, vocab, n)
    names = y if informative else rng.integers(0, vocab, n)
    f = np.eye(vocab, dtype=np.float32)[names] + 0.1 * rng.standard_normal((n, vocab)).astype(np.float32)
    h = 0.01 * rng.standard_normal((n, dim)).astype(np.float32)
    head = rng.standard_normal((vocab, dim)).astype(np.float32)
    return feature_probe.ProbeData(h, f, y, np.arange(n) // 30), head


@pytest.mark.parametrize("informative", [True, False])
def test_the_fit_finds_what_the_features_tell_and_nothing_more(informative):
    data, head = _planted(informative)
    train, held = feature_probe.split(data)
    assert len(held) == 600 and set(data.sequence[held]) & set(data.sequence[train]) == set()
    zero = np.zeros((16, 16), np.float32)
    alone = feature_probe.accuracy(data, head, zero, held)
    _, curve = feature_probe.fit(data, head, train, held, steps=200, lr=3e-2)
    assert curve[0] == (0, alone)
    if informative:
        assert max(a for _, a in curve) > 0.9 > alone + 0.5
    else:
        assert max(a for _, a in curve) < 0.2


def test_the_program_probes_a_tiny_pard2_pair(tmp_path, capsys):
    pair = make_pard2_pair(str(tmp_path))
    data = tmp_path / "data.jsonl"
    rng = np.random.default_rng(0)
    with open(data, "w") as f:
        for _ in range(10):
            words = lambda n: " ".join(f"w{i}" for i in rng.integers(0, 100, n))  # noqa: E731
            f.write(json.dumps({"text": words(16)}) + "\n")
    out = tmp_path / "probe.json"
    assert probe_features.main(["--data", str(data), "--draft", pair["draft"], "--target", pair["target"],
                                "--steps", "10", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["sequences"] == 10 and figures["layers"] == [-1, 1]  # the draft's pard2_target_layers
    assert 0.0 <= figures["draft_alone"] <= figures["draft_plus_features"] <= 1.0
    assert "draft + features" in capsys.readouterr().out


def test_the_program_refuses_layers_the_target_does_not_have(tmp_path, capsys):
    pair = make_pard2_pair(str(tmp_path))
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "w1 w2 w3 w4 w5"}) + "\n")
    assert probe_features.main(["--data", str(data), "--draft", pair["draft"], "--target", pair["target"],
                                "--layers=-1,7"]) == 2
    assert "hidden states are -3..2" in capsys.readouterr().err
