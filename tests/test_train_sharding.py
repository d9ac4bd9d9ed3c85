"""One train step on 8 simulated CPU devices (data 2 x fsdp 2 x tensor 2, or fsdp 8) equals the step on 1 device;
so do gradient accumulation and rematerialization; bfloat16 compute stays close; a frozen embedding stays put."""

import subprocess
import sys
import textwrap

from processes import REPO, device_env, result_of

SCRIPT = textwrap.dedent("""
    import dataclasses, json, os
    import jax, numpy as np
    from pard_jax.models.decoder import init_params
    from pard_jax.training import pipeline, trainer
    from pard_jax.training import step as train_step
    from pard_jax.training.config import load_train_config

    cfg = load_train_config(os.path.join(REPO, "configs/train/smoke.yaml"),
                              ["run_dir=" + RUN_DIR, "data.paths=[" + os.path.join(REPO, "configs/train/data/smoke.jsonl") + "]",
                               # Adam's first step is lr * g / (|g| + eps): a larger eps keeps float noise in
                               # near-zero gradients from being amplified to a full step.
                               "optimizer.warmup_steps=0", "optimizer.eps=1e-6"])
    model = trainer.load_initial_model(cfg)
    model.host_params = jax.device_get(init_params(model.cfg, jax.random.key(3)))
    local = next(pipeline.train_batches(cfg, model.tokenizer))

    def step(mesh, devices, freeze=(), rows=(), **train):
        c = dataclasses.replace(cfg, mesh=dataclasses.replace(cfg.mesh, **mesh),
                                train=dataclasses.replace(cfg.train, **train),
                                model=dataclasses.replace(cfg.model, freeze=list(freeze), train_embed_rows=list(rows)))
        s = trainer.build_setup(c, model=model, devices=devices)
        params, opt_state = trainer.initial_state(s)
        params, opt_state, metrics = s.step_fn(params, opt_state, trainer.global_batch(s, local))
        shards = sorted({str(x.sharding.spec) for x in jax.tree.leaves(params)})
        return jax.device_get(params), train_step.host_metrics(metrics), shards

    devs = jax.devices()
    assert len(devs) == 8, devs
    runs = {
        "one": step(dict(data=1, fsdp=1, tensor=1), devs[:1]),
        "dft": step(dict(data=2, fsdp=2, tensor=2), devs),
        "fsdp": step(dict(data=1, fsdp=8, tensor=1), devs),
        "accum": step(dict(data=2, fsdp=2, tensor=2), devs, grad_accum=2),
        "remat": step(dict(data=2, fsdp=2, tensor=2), devs, grad_accum=2, remat=True),
        "bf16": step(dict(data=2, fsdp=2, tensor=2), devs, compute_dtype="bfloat16"),
        # model.freeze=[embed] but for the mask id's row (model.train_embed_rows=[5])
        "frozen": step(dict(data=2, fsdp=2, tensor=2), devs, freeze=["embed"], rows=[5]),
    }
    init = model.host_params
    ref = jax.tree.leaves(runs["one"][0])
    out = {}
    for name, (params, metrics, shards) in runs.items():
        diffs = [float(np.max(np.abs(a - b))) for a, b in zip(ref, jax.tree.leaves(params))]
        out[name] = dict(loss=metrics["loss"], acc=metrics["accuracy_by_block"], max_param_diff=max(diffs),
                         grad_norm=metrics["grad_norm"], lr=cfg.optimizer.learning_rate,
                         dtypes=sorted({str(x.dtype) for x in jax.tree.leaves(params)}),
                         shards=shards,
                         embed_moved=float(np.max(np.abs(np.delete(params["embed"] - init["embed"], 5, 0)))),
                         rows_moved=np.flatnonzero(np.any(params["embed"] != init["embed"], axis=1)).tolist(),
                         rest_moved=min(float(np.max(np.abs(a - b))) for a, b in zip(
                             jax.tree.leaves({n: p for n, p in params.items() if n != "embed"}),
                             jax.tree.leaves({n: p for n, p in init.items() if n != "embed"}))))
    print("RESULT " + json.dumps(out))
""")


def test_one_step_on_8_devices_equals_one_device(tmp_path):
    code = f"REPO = {REPO!r}\nRUN_DIR = {str(tmp_path)!r}\n" + SCRIPT
    proc = subprocess.run([sys.executable, "-c", code], env=device_env(8, fast_compile=True), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = result_of(proc.stdout)
    one = res["one"]
    # The 8-device runs really are sharded: FSDP over embed, tensor over heads/mlp/vocab.
    assert any("fsdp" in s and "tensor" in s for s in res["dft"]["shards"]), res["dft"]["shards"]
    assert any("fsdp" in s for s in res["fsdp"]["shards"]), res["fsdp"]["shards"]
    for name in ("dft", "fsdp", "accum", "remat"):
        r = res[name]
        assert abs(r["loss"] - one["loss"]) < 1e-5 * abs(one["loss"]), (name, r["loss"], one["loss"])
        assert max(abs(a - b) for a, b in zip(r["acc"], one["acc"])) < 1e-6, name
        assert abs(r["grad_norm"] - one["grad_norm"]) < 1e-5 * one["grad_norm"], name
        assert r["max_param_diff"] < 1e-3 * one["lr"], (name, r["max_param_diff"])
    # bfloat16 compute with float32 master weights: same step, within bf16 rounding.
    assert abs(res["bf16"]["loss"] - one["loss"]) < 2e-2 * one["loss"]
    assert abs(res["bf16"]["grad_norm"] - one["grad_norm"]) < 2e-2 * one["grad_norm"]
    assert res["bf16"]["dtypes"] == ["float32"]  # master weights stay float32
    assert one["max_param_diff"] == 0.0 and res["dft"]["max_param_diff"] < one["lr"]
    # model.freeze=[embed] with train_embed_rows=[5]: the table stays bit-identical (no update, no weight decay)
    # but for the mask token's row, which learns; the rest of the model still learns.
    assert one["embed_moved"] > 0 and one["rest_moved"] > 0
    assert res["frozen"]["embed_moved"] == 0.0 and res["frozen"]["rest_moved"] > 0
    assert res["frozen"]["rows_moved"] == [5]
    assert abs(res["frozen"]["loss"] - one["loss"]) < 1e-5 * abs(one["loss"])
