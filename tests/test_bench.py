"""The benchmark program (pard_jax.cli.bench, infer/bench.py) end to end on a tiny random model: every mode on
the same prompts in one run, the three output files, speedups against the ar row, speculative rows identical to
ar, and the transformers rows."""

from __future__ import annotations

import json
import os

import pytest

from pard_jax.cli import bench
from tests import hf_tiny


def test_bench_writes_results_table_and_plot(tmp_path, capsys):
    model_dir = tmp_path / "tiny"
    hf_tiny.make_tiny("llama-tied", str(model_dir))
    hf_tiny.make_tiny_tokenizer().save_pretrained(str(model_dir))
    sets = {}
    for name, words in (("alpha", ["w5 w6 w7", "w9 w4", "w20 w21 w22 w23"]), ("beta", ["w30 w31", "w40"])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"data": w}) + "\n" for w in words))
        sets[name] = str(path)
    out = tmp_path / "out"
    rc = bench.main(["--prompts-file", sets["alpha"], "--prompts-file", sets["beta"], "--modes", "ar,sd,pard",
                     "-k", "2,3", "--max-new-tokens", "6", "--hf-baseline", "--hf-assisted",
                     "--target", str(model_dir),
                     "--draft", str(model_dir), "--draft-layers", "1", "--mask-token-id", "100", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert {"results.json", "results.md", "speedup.png"} <= set(os.listdir(out))
    assert (out / "speedup.png").stat().st_size > 10_000

    rows = json.loads((out / "results.json").read_text())["rows"]
    got = [(r["prompt_set"], r["mode"], r["k"]) for r in rows]
    for s in ("alpha", "beta"):
        assert got.count((s, "ar", 0)) == 1
        for mode in ("sd", "pard"):
            assert (s, mode, 2) in got and (s, mode, 3) in got
        assert (s, "hf_greedy", 0) in got and (s, "hf_assisted", 3) in got
    for r in rows:
        assert {"prompt_set", "mode", "k", "mean_accepted", "accept_rate_by_position", "tokens_per_second",
                "speedup_vs_ar", "num_prompts"} <= set(r)
        assert r["num_prompts"] == (3 if r["prompt_set"] == "alpha" else 2)
        assert r["tokens_per_second"] > 0
        ar = next(a for a in rows if a["prompt_set"] == r["prompt_set"] and a["mode"] == "ar")
        assert abs(r["speedup_vs_ar"] - r["tokens_per_second"] / ar["tokens_per_second"]) < 1e-9
        if r["mode"] in ("sd", "pard"):
            assert r["identical_to_ar"] == 1.0  # lossless greedy
            assert len(r["accept_rate_by_position"]) == r["k"] and 1.0 <= r["mean_accepted"] <= r["k"] + 1
        if r["mode"] == "hf_greedy":
            assert r["identical_to_ar"] == 1.0  # transformers' greedy decoding of the same weights
    table = (out / "results.md").read_text()
    assert table.count("\n| alpha |") == 7 and "speedup vs ar" in table


def test_bench_gives_a_pard2_draft_td_and_ti_rows(tmp_path, capsys):
    """--pard2 td,ti: each k has a target-dependent and a target-independent PARD row, both identical to ar, the
    labels in the table; --pard2 td with a plain PARD draft is refused in one sentence."""
    pair = hf_tiny.make_pard2_pair(tmp_path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"data": w}) + "\n" for w in ["w5 w6 w7", "w9 w4 w11"]))
    common = ["--prompts-file", str(prompts), "--modes", "ar,pard", "-k", "2", "--max-new-tokens", "8",
              "--target", pair["target"], "--out", str(tmp_path / "out")]
    assert bench.main([*common, "--draft", pair["draft"], "--pard2", "td,ti"]) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert sorted((r["mode"], r["pard2"]) for r in rows) == [("ar", None), ("pard", "td"), ("pard", "ti")]
    assert all(r["identical_to_ar"] == 1.0 for r in rows)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| p | pard td | 2 |" in table and "| p | pard ti | 2 |" in table
    capsys.readouterr()
    plain = tmp_path / "plain"
    hf_tiny.make_tiny("llama", str(plain), seed=2, num_hidden_layers=1, **hf_tiny.PARD2_SHAPE)
    assert bench.main([*common, "--draft", str(plain), "--mask-token-id", "130", "--pard2", "td"]) == 2
    err = capsys.readouterr().err
    assert "--pard2 td needs" in err and "Traceback" not in err


def test_bench_calls_on_random_weights_of_a_local_shape(tmp_path):
    """bench_calls with --random-weights reads only a config.json: every cost, its roofline fraction against the
    given peak, and the predicted PARD speedups (for accepted lengths up to k + 1) are written to --out."""
    import json

    from pard_jax.cli import bench_calls
    from tests.tiny_models import tiny_config

    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(dict(tiny_config(vocab=128, layers=2).to_hf_dict(), pard_token=3)))
    out = tmp_path / "out"
    rc = bench_calls.main(["--random-weights", "--target", str(model), "--draft", str(model), "--draft-layers", "1",
                           "-k", "2", "--repeats", "2", "--context", "16", "--prefill-tokens", "24",
                           "--peak-gbps", "10", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "bench_calls.json").read_text())
    assert res["random_weights"] and res["peak_bytes_per_s"] == 10e9 and res["context"] == 16
    calls = [res["ar"], res["prefill"], res["k"][0]["verify"], res["k"][0]["pard_draft"], res["k"][0]["sd_draft"]]
    for c in calls:
        assert c["ms"] > 0 and c["bytes_read"] > 0
        assert c["roofline"] == pytest.approx(c["bytes_read"] / (c["ms"] / 1e3) / 10e9)
    # The draft (1 layer) reads less than the target (2 layers); an sd draft of k=2 reads it twice.
    assert res["k"][0]["pard_draft"]["bytes_read"] < res["ar"]["bytes_read"]
    assert res["k"][0]["sd_draft"]["bytes_read"] == 2 * res["k"][0]["pard_draft"]["bytes_read"]
    assert sorted(map(int, res["k"][0]["predicted_speedup"])) == [2, 3]
    assert "of the roofline" in (out / "bench_calls.txt").read_text()


def test_bench_calls_times_a_pard2_drafts_target_dependent_calls(tmp_path):
    """A PARD-2 draft: the TD draft call, the verify call that also returns the feature layers, and both loop
    iterations (TD and TI) are timed beside the plain calls."""
    import dataclasses
    import json

    from pard_jax.cli import bench_calls
    from pard_jax.models.config import Pard2
    from tests.tiny_models import tiny_config

    target, draft = tmp_path / "target", tmp_path / "draft"
    cfg = tiny_config(vocab=128, layers=2)
    for folder, c in ((target, cfg), (draft, dataclasses.replace(cfg, num_layers=1, pard_token=3,
                                                                   pard2=Pard2((-1, 1), 2 * cfg.hidden_size)))):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(c.to_hf_dict()))
    out = tmp_path / "out"
    rc = bench_calls.main(["--random-weights", "--target", str(target), "--draft", str(draft), "-k", "2",
                           "--repeats", "2", "--context", "16", "--prefill-tokens", "24", "--out", str(out)])
    assert rc == 0
    row = json.loads((out / "bench_calls.json").read_text())["k"][0]
    assert row["td_draft"]["ms"] > 0 and row["verify_features"]["ms"] > 0 and row["ti_iteration_ms"] > 0
    text = (out / "bench_calls.txt").read_text()
    assert "TD draft (k=2)" in text and "PARD-2 TD iteration" in text and "PARD-2 TI iteration" in text
