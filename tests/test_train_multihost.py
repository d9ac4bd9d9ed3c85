"""Two local processes joined with `jax.distributed` on loopback (CPU collectives, 4 simulated devices each)
train 3 steps of smoke.yaml on one 8-device mesh, save a checkpoint together, and agree on the loss."""

import json
import os
import socket
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DRIVER = textwrap.dedent("""
    import json, os, sys
    from pard_jax.training.config import load_train_config
    from pard_jax.training.trainer import run
    cfg = load_train_config(os.path.join(REPO, "configs/train/smoke.yaml"), sys.argv[1:])
    logged = run(cfg, progress=False)
    import jax
    print("RESULT " + json.dumps({"process": jax.process_index(), "count": jax.process_count(),
                                  "devices": jax.device_count(), "local": jax.local_device_count(),
                                  "losses": [r["loss"] for r in logged]}))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_on_the_loss(tmp_path):
    port = _free_port()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    code = f"REPO = {REPO!r}\n" + DRIVER
    common = [f"run_dir={tmp_path}", f"data.paths=[{REPO}/configs/train/data/smoke.jsonl]",
              "train.steps=3", "train.log_every=1", "checkpoint.every=3",
              "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2",
              "distributed.enabled=true", f"distributed.coordinator_address=127.0.0.1:{port}",
              "distributed.num_processes=2"]
    procs = [subprocess.Popen([sys.executable, "-c", code, *common, f"distributed.process_id={i}"], env=env,
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1][7:]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert sorted(o["process"] for o in outs) == [0, 1]
    assert all(o["count"] == 2 and o["devices"] == 8 and o["local"] == 4 for o in outs)
    a, b = outs[0]["losses"], outs[1]["losses"]
    assert len(a) == 3 and a == b
    assert os.path.isfile(tmp_path / "checkpoints" / "3" / "data" / "process_0-of-2.json")
    assert os.path.isfile(tmp_path / "checkpoints" / "3" / "data" / "process_1-of-2.json")
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # written by process 0 only
