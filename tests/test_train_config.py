"""Every shipped training config parses; bad input ends with one clear sentence and a non-zero exit."""

import glob
import json
import os

import pytest

from pard_jax.errors import UserError
from pard_jax.training.config import TrainConfig, load_train_config
from processes import REPO, run_program

SMOKE = os.path.join(REPO, "configs", "train", "smoke.yaml")
DATA = os.path.join(REPO, "configs", "train", "data", "smoke.jsonl")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "train", "*.yaml"))))
def test_every_shipped_config_parses(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.pard.k >= 1 and cfg.data.paths


def test_overrides_and_unknown_keys():
    cfg = load_train_config(SMOKE, ["run_dir=/tmp/x", "pard.r=1", "optimizer.learning_rate=3e-4", "mesh.tensor=2"])
    assert cfg.run_dir == "/tmp/x" and cfg.pard.r == 1.0 and cfg.optimizer.learning_rate == 3e-4
    assert cfg.mesh.tensor == 2
    with pytest.raises(UserError, match="'pard.rr'"):
        load_train_config(SMOKE, ["pard.rr=0.5"])




def _overrides(*overrides, run_dir):
    """The smoke config's overrides for a run in `run_dir` on the smoke data, then `overrides`."""
    return [f"run_dir={run_dir}", f"data.paths=[{DATA}]", *overrides]


def test_bad_input_gives_one_sentence_and_a_nonzero_exit(tmp_path):
    import jax

    from pard_jax.training import trainer

    (tmp_path / "empty.jsonl").write_text("\n")
    # A run_dir that holds a checkpoint of this model shape.
    cfg = load_train_config(SMOKE, _overrides("train.steps=1", "checkpoint.every=1", run_dir=tmp_path / "run"))
    trainer.run(cfg, progress=False, devices=jax.devices()[:1])
    before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))

    cases = {
        "missing data file": (["data.paths=[/nonexistent/data.jsonl]"], "does not exist"),
        "empty dataset": ([f"data.paths=[{tmp_path / 'empty.jsonl'}]"], "no examples"),
        "mesh size": (["mesh.data=3"], "mesh"),
        "k": (["pard.k=0"], "pard.k"),
        "r": (["pard.r=1.5"], "pard.r "),
        "r_min": (["pard.r_min=0"], "r_min"),
        "mask id": (["pard.mask_token_id=264"], "mask_token_id"),
        "unknown key": (["train.stpes=3"], "train.stpes"),
        "embed rows of a trained table": (["model.train_embed_rows=[5]"], "model.freeze"),
        "empty sub-vocabulary": (["model.draft_vocab=0"], "model.draft_vocab"),
        "other model shape": (["model.hf_config.hidden_size=32", "model.hf_config.head_dim=8"], "different model"),
    }
    run_dirs = {name: tmp_path / ("run" if name == "other model shape" else name.replace(" ", "_")) for name in cases}
    argvs = [["--config", SMOKE, *_overrides(*over, run_dir=run_dirs[name])] for name, (over, _) in cases.items()]
    # All runs in one process (tests/programs/train_runs.py), each with its own stderr.
    for name, r in zip(cases, run_program("train_runs", [json.dumps(argvs)], devices=None, timeout=300)):
        lines = [ln for ln in r["err"].strip().splitlines() if ln.strip()]
        assert r["code"] != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, r["err"][-2000:])
        assert cases[name][1] in lines[0], (name, lines[0])
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before  # refused, not overwritten


def test_sub_vocabulary_head_and_learned_mask_row_train_and_ship_compactly(tmp_path):
    """model.draft_vocab=N picks the N ids the data trains most often (EOS always in); with the table frozen but
    for the mask row, training moves that row only, and the compact export holds the trained head and that row."""
    import dataclasses

    import jax
    import numpy as np

    from pard_jax.distill.vocab import token_counts
    from pard_jax.training import initial_model, trainer
    from pard_jax.training.export import export_checkpoint
    from pard_jax.training.records import read_records, trained_ids
    from pard_jax.weights.sources import load_model

    cfg = load_train_config(SMOKE, _overrides("model.draft_vocab=40", "model.freeze=[embed]",
                                              "model.train_embed_rows=[5]", "train.steps=3", "checkpoint.every=3",
                                              "optimizer.warmup_steps=0", "mesh.data=1", run_dir=tmp_path / "run"))
    model = initial_model.load_initial_model(cfg)
    ids = np.asarray(model.cfg.draft_vocab)
    counts = token_counts(trained_ids(read_records([DATA]), model.tokenizer), model.cfg.vocab_size)
    assert len(ids) == 40 and model.tokenizer.eos_token_id in ids
    others = np.setdiff1d(np.arange(model.cfg.vocab_size), ids)
    assert counts[others].max() <= np.sort(counts[ids])[1]  # the most frequent (EOS may be the one rare pick)

    trainer.run(cfg, progress=False, devices=jax.devices()[:1])
    out = tmp_path / "draft"
    assert export_checkpoint(cfg.run_dir, str(out), compact=True) == 3
    init = trainer.initial_state(trainer.build_setup(cfg, devices=jax.devices()[:1]))[0]
    table = np.asarray(init["embed"])
    draft = load_model(str(out), shared_embed=table)
    assert draft.cfg.draft_vocab == model.cfg.draft_vocab
    moved = np.flatnonzero(np.any(draft.params["embed"] != table, axis=1))
    assert moved.tolist() == [5]
    assert draft.params["draft_head"].shape == (40, 64)
    assert not np.allclose(draft.params["draft_head"], table[ids], atol=1e-2)  # the head trained
    # Resuming on grown data keeps the head's ids (the checkpoint's), so the run is still the same model.
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"text": "zzzz qqqq " * 40}) + "\n" for _ in range(30)))
    grown = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, paths=[DATA, str(more)]))
    assert initial_model.load_initial_model(grown).cfg.draft_vocab == model.cfg.draft_vocab
