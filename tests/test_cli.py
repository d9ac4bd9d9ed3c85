"""The generation program (pard_jax.cli.generate, infer/generate.py): the JSON contract, PARD == AR on the real
SmolLM2 (with the shipped draft and with the target itself as an untrained draft), the demo's comparison with ar,
and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from pard_jax.cli import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROMPTS = ["What is 7 times 8?", "Name three colors.", "Write a haiku about the sea."]
# One answer length for every SmolLM2 test, so that one ar run (the `ar_rows` fixture) is the reference of each.
NEW = "24"


def run_cli(capsys, *argv):
    rc = generate.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def json_rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "p.jsonl"
    path.write_text("".join(json.dumps({"data": p}) + "\n" for p in PROMPTS))
    return str(path)


@pytest.fixture(scope="module")
def ar_rows(prompts_file):
    """ar's JSON rows for PROMPTS in one batch: what the speculative modes must reproduce."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert generate.main(["--prompts-file", prompts_file, "--max-new-tokens", NEW, "--json", "--batch-size", "3",
                              "--mode", "ar"]) == 0
    return json_rows(out.getvalue())


def test_json_contract_and_pard_equals_ar_on_smollm2(capsys, prompts_file, ar_rows):
    assert len(ar_rows) == len(PROMPTS)
    for row, prompt in zip(ar_rows, PROMPTS):
        assert row["prompt"] == prompt and row["mode"] == "ar"
        for key in ("text", "token_ids", "num_generated", "target_calls", "mean_accepted", "tokens_per_second",
                    "accept_rate_by_position"):
            assert key in row
        assert row["num_generated"] == len(row["token_ids"]) == row["target_calls"]
        assert row["mean_accepted"] == 1.0 and row["text"].strip()
    # The target itself as an (untrained) PARD draft: different machinery, identical text, in a batch.
    rc, out, _ = run_cli(capsys, "--prompts-file", prompts_file, "--max-new-tokens", NEW, "--json",
                         "--batch-size", "3", "--mode", "pard", "--draft", "smollm2-135m-instruct",
                         "--mask-token-id", "16", "-k", "4")
    assert rc == 0
    pard = json_rows(out)
    assert [r["token_ids"] for r in pard] == [r["token_ids"] for r in ar_rows]
    assert [r["text"] for r in pard] == [r["text"] for r in ar_rows]
    for r in pard:
        assert r["mode"] == "pard" and len(r["accept_rate_by_position"]) == 4
        assert r["accept_rate_by_position"][0] == 1.0  # the first draft token is the target's own prediction
        assert r["mean_accepted"] == pytest.approx(r["num_generated"] / r["target_calls"])
        assert r["mean_accepted"] > 1.0


def test_sd_equals_ar_on_smollm2_with_a_truncated_draft(capsys, prompts_file, ar_rows):
    rc, out, _ = run_cli(capsys, "--prompts-file", prompts_file, "--max-new-tokens", NEW, "--json",
                         "--batch-size", "3", "--mode", "sd", "--draft", "smollm2-135m-instruct",
                         "--draft-layers", "4", "-k", "3")
    assert rc == 0
    assert [r["token_ids"] for r in json_rows(out)] == [r["token_ids"] for r in ar_rows]


def test_default_config_decodes_with_the_shipped_pard_draft(capsys, prompts_file, ar_rows):
    """The packaged default config's models: PARD with the packaged draft smollm2-135m-pard, at k=3 so that its
    learned mask token is read (k=1 feeds none); same tokens as ar, and it accepts."""
    rc, out, _ = run_cli(capsys, "--prompts-file", prompts_file, "--max-new-tokens", NEW, "--json",
                         "--batch-size", "3", "-k", "3")
    assert rc == 0
    pard = json_rows(out)
    assert [r["token_ids"] for r in pard] == [r["token_ids"] for r in ar_rows]
    assert all(r["mode"] == "pard" for r in pard)
    # The untrained 4-layer cut of the target that the draft started from is right at position 1 about 4% of
    # the time (1.05 tokens per call); the trained draft about 40% here.
    calls = sum(r["target_calls"] for r in pard)
    assert sum(r["num_generated"] for r in pard) / calls > 1.3
    assert sum(r["accept_rate_by_position"][0] * r["target_calls"] for r in pard) / calls > 0.25


def test_compare_ar_reports_speedup_and_identical_text(capsys):
    rc, out, _ = run_cli(capsys, "--prompt", PROMPTS[0], "--max-new-tokens", NEW, "--compare-ar")
    assert rc == 0
    last = out.strip().splitlines()[-1]
    assert "x the speed of ar" in last and "text identical to ar for 1 of 1 prompt(s)" in last, out
    assert last.startswith("pard k=2 ti is")  # the default config: the shipped PARD-2 draft, target-independent
    assert "[pard k=2 ti, best warm run]" in out and "[ar, best warm run]" in out and "mean accepted" in out


def write(path, text):
    path.write_text(text)
    return str(path)


def bad_inputs(tmp):
    empty_dir = tmp / "empty"
    empty_dir.mkdir()
    gpt2 = tmp / "gpt2"
    gpt2.mkdir()
    write(gpt2 / "config.json", json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    return {
        "missing model": (["--target", str(tmp / "nope"), "--prompt", "hi"], "does not exist"),
        "no config.json": (["--target", str(empty_dir), "--prompt", "hi"], "config.json"),
        "unsupported architecture": (["--target", str(gpt2), "--prompt", "hi"], "LlamaForCausalLM"),
        "empty prompts file": (["--prompts-file", write(tmp / "e.txt", "\n\n")], "empty"),
        "missing prompts file": (["--prompts-file", str(tmp / "none.jsonl")], "does not exist"),
        "prompt longer than the context": (["--prompt", "word " * 300, "max_cache_len=256"], "context"),
        "cache over the memory budget": (["--prompt", "hi", "cache_memory_gb=0.0001"], "cache_memory_gb"),
        "prefill chunk": (["--prompt", "hi", "prefill_chunk=0"], "prefill_chunk"),
        "negative temperature": (["--prompt", "hi", "--temperature", "-1"], "temperature"),
        "top-p above 1": (["--prompt", "hi", "--top-p", "1.5"], "top-p"),
        "top-p zero": (["--prompt", "hi", "--top-p", "0"], "top-p"),
        "max-new-tokens 0": (["--prompt", "hi", "--max-new-tokens", "0"], "max-new-tokens"),
        "unknown config key": (["--config", write(tmp / "c.yaml", "target: x\nfoo: 1\n"), "--prompt", "hi"], "'foo'"),
        "k out of range": (["--prompt", "hi", "--mode", "pard", "--draft", "smollm2-135m-instruct", "-k", "40"], "k must"),
        "pard without mask id": (["--prompt", "hi", "--mode", "pard", "--draft", "smollm2-135m-instruct"], "mask-token-id"),
        "mask id out of vocab": (["--prompt", "hi", "--mode", "pard", "--draft", "smollm2-135m-instruct",
                                  "--mask-token-id", "99999"], "outside the vocabulary"),
        "mask id used by the chat template": (["--prompt", "hi", "--mode", "pard", "--draft", "smollm2-135m-instruct",
                                               "--mask-token-id", "1"], "chat template"),
    }


def test_bad_input_gives_one_clear_sentence(capsys, tmp_path):
    for name, (argv, phrase) in bad_inputs(tmp_path).items():
        rc, out, err = run_cli(capsys, *argv)
        assert rc != 0, name
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and phrase in lines[0], (name, err)
        assert "Traceback" not in err and out == "", name


def test_bad_input_exit_code_through_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "infer", "generate.py"), "--prompt", "hi",
                           "--target", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in proc.stderr


def test_every_infer_config_parses():
    import glob

    from pard_jax.config_io import load_config
    from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig, validate

    assert os.path.isfile(DEFAULT_CONFIG)
    for path in [DEFAULT_CONFIG, *sorted(glob.glob(os.path.join(ROOT, "configs", "infer", "*.yaml")))]:
        validate(load_config(InferConfig, path))
    cfg = load_config(InferConfig, DEFAULT_CONFIG)
    assert (cfg.mode, cfg.draft, cfg.k) == ("pard", "smollm2-135m-pard", 2)
