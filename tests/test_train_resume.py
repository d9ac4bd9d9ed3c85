"""Kill and resume: steps after resuming from a checkpoint give the same losses as an uninterrupted run,
and a partly written checkpoint is never loaded."""

import json
import os

import pytest

from pard_jax.errors import UserError
from pard_jax.training import trainer
from pard_jax.training.config import load_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(run_dir, *extra):
    return load_train_config(os.path.join(REPO, "configs/train/smoke.yaml"), [
        f"run_dir={run_dir}", f"data.paths=[{REPO}/configs/train/data/smoke.jsonl]", "train.steps=8",
        "train.log_every=1", "checkpoint.every=2", "checkpoint.keep=2", "optimizer.warmup_steps=2", *extra])


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    full = trainer.run(_cfg(tmp_path / "a"), progress=False)
    assert [r["step"] for r in full] == list(range(1, 9))

    run_dir = tmp_path / "b"
    first = trainer.run(_cfg(run_dir), stop_after=5, progress=False)  # "killed" after step 5
    assert [r["step"] for r in first] == [1, 2, 3, 4, 5]
    ckpts = run_dir / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [2, 4]
    # A save that died half way: orbax writes a step under a temporary name and renames it when complete.
    partial = ckpts / "6.orbax-checkpoint-tmp-1700000000000000"
    (partial / "params").mkdir(parents=True)
    (partial / "params" / "garbage").write_text("not a checkpoint")

    rest = trainer.run(_cfg(run_dir), progress=False)
    assert [r["step"] for r in rest] == [5, 6, 7, 8]  # resumed from step 4, not the partial 6
    for got, want in zip(first[:4] + rest, full):
        assert got["step"] == want["step"]
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-6, abs=1e-6)
        assert got["accuracy_by_block"] == pytest.approx(want["accuracy_by_block"], abs=1e-6)
    logged = [json.loads(ln)["step"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 9))  # step 5 of the killed run is not logged twice
    assert {"step", "loss", "accuracy_by_block", "tokens_per_second", "lr"} <= set(rest[-1])
    assert len(rest[-1]["accuracy_by_block"]) == 4

    # Finished: running again trains nothing more.
    assert trainer.run(_cfg(run_dir), progress=False) == []


def test_stop_at_ends_a_run_with_a_checkpoint_and_a_later_run_continues_its_schedule(tmp_path):
    """train.stop_at=3 saves step 3 (checkpoint.every is 2) and stops; the next run (with a setting changed, as
    between the phases of a recipe) resumes there, on the learning-rate schedule of train.steps."""
    full = trainer.run(_cfg(tmp_path / "a"), progress=False)
    run_dir = tmp_path / "b"
    first = trainer.run(_cfg(run_dir, "train.stop_at=3"), progress=False)
    assert [r["step"] for r in first] == [1, 2, 3]
    assert 3 in [int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    rest = trainer.run(_cfg(run_dir, "train.stop_at=5", "train.log_every=2"), progress=False)
    assert [r["step"] for r in rest] == [4, 5]
    assert rest[-1]["lr"] == pytest.approx(full[4]["lr"], rel=1e-6)
    assert trainer.run(_cfg(run_dir, "train.stop_at=5"), progress=False) == []  # already there
    with pytest.raises(UserError, match="train.stop_at must lie in 0..train.steps=8"):
        _cfg(run_dir, "train.stop_at=9")
