"""End to end on configs/train/smoke.yaml with 8 simulated devices: the loss falls, metrics.jsonl is written,
and the exported HF directory loads in transformers with the same logits as the checkpoint."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "train/train.py", "--config", "configs/train/smoke.yaml", f"run_dir={run_dir}",
         "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run_dir, proc


def test_loss_falls_and_metrics_are_logged(smoke_run):
    run_dir, proc = smoke_run
    records = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(10, 151, 10))
    for r in records:
        assert {"step", "loss", "accuracy_by_block", "tokens_per_second", "lr"} <= set(r)
        assert len(r["accuracy_by_block"]) == 4 and r["tokens_per_second"] > 0 and r["lr"] > 0
    first, last = records[0], np.mean([r["loss"] for r in records[-3:]])
    assert last < first["loss"] - 1.5, (first["loss"], last)
    assert np.mean([r["accuracy_by_block"][0] for r in records[-3:]]) > records[0]["accuracy_by_block"][0] + 0.05
    assert "it/s" in proc.stderr or "step/s" in proc.stderr or "s/step" in proc.stderr  # the progress bar
    assert (run_dir / "checkpoints" / "150").is_dir()


def test_export_loads_in_transformers_with_the_same_logits(smoke_run, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from pard_jax.models.config import ModelConfig
    from pard_jax.models.decoder import forward, init_params
    from pard_jax.training.checkpoint import Checkpointer

    run_dir, _ = smoke_run
    out = tmp_path / "hf"
    proc = subprocess.run([sys.executable, "train/export.py", "--checkpoint", str(run_dir), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    hf_cfg = json.loads((out / "config.json").read_text())
    assert hf_cfg["pard_token"] == 5 and hf_cfg["spd_type"] == "pard"

    cfg = ModelConfig.from_hf_dict(hf_cfg)
    ckpt = Checkpointer(str(run_dir), read_only=True)
    abstract = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    params = ckpt.restore_params(150, abstract)
    tokens = np.array([[1, 3] + [8 + b for b in b"What is 2 plus 3?"] + [4]], np.int32)
    positions = np.arange(tokens.shape[1], dtype=np.int32)[None]
    want = np.asarray(forward(params, cfg, jnp.asarray(tokens), jnp.asarray(positions)))

    model = transformers.AutoModelForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32)
    assert getattr(model.config, "pard_token", None) == 5
    with torch.no_grad():
        got = model(torch.tensor(tokens, dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_export_refuses_a_missing_step(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    proc = subprocess.run([sys.executable, "train/export.py", "--checkpoint", str(run_dir), "--step", "7",
                           "--out", str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("error:") and "step 7" in proc.stderr and "Traceback" not in proc.stderr


def test_compact_export_needs_a_frozen_embedding(smoke_run, tmp_path):
    run_dir, _ = smoke_run  # smoke.yaml trains the embedding table
    proc = subprocess.run([sys.executable, "train/export.py", "--checkpoint", str(run_dir), "--compact",
                           "--out", str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and "model.freeze=[embed]" in proc.stderr
    assert not (tmp_path / "x").exists()
