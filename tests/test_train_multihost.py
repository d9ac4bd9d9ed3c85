"""Two local processes joined with `jax.distributed` on loopback (CPU collectives, 4 simulated devices each)
train 3 steps of smoke.yaml on one 8-device mesh, save a checkpoint together, and agree on the loss."""

import os

from processes import REPO, result_of, run_joined


def test_two_processes_agree_on_the_loss(tmp_path):
    argv = [f"run_dir={tmp_path}", f"data.paths=[{REPO}/configs/train/data/smoke.jsonl]",
            "train.steps=3", "train.log_every=1", "checkpoint.every=3", "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2"]
    outs = [result_of(out) for out in run_joined("train_joined", argv, devices=4, fast_compile=True)]
    assert sorted(o["process"] for o in outs) == [0, 1]
    assert all(o["count"] == 2 and o["devices"] == 8 and o["local"] == 4 for o in outs)
    a, b = outs[0]["losses"], outs[1]["losses"]
    assert len(a) == 3 and a == b
    assert os.path.isfile(tmp_path / "checkpoints" / "3" / "data" / "process_0-of-2.json")
    assert os.path.isfile(tmp_path / "checkpoints" / "3" / "data" / "process_1-of-2.json")
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # written by process 0 only
