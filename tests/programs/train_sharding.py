"""Run by tests/test_train_sharding.py on 8 simulated CPU devices: `train_sharding.py RUN_DIR` takes one train
step of smoke.yaml on one device and on 8 (several meshes, accumulation, rematerialization, bfloat16 compute, a
frozen embedding); one RESULT line with each step's loss, metrics and how far its params are from one device's."""

import dataclasses
import json
import os
import sys

import jax
import numpy as np

from pard_jax.models.decoder import init_params
from pard_jax.training import initial_model, pipeline, trainer
from pard_jax.training import step as train_step
from pard_jax.training.config import load_train_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_DIR = sys.argv[1]

cfg = load_train_config(os.path.join(REPO, "configs/train/smoke.yaml"),
                        ["run_dir=" + RUN_DIR,
                         "data.paths=[" + os.path.join(REPO, "configs/train/data/smoke.jsonl") + "]",
                         # Adam's first step is lr * g / (|g| + eps): a larger eps keeps float noise in
                         # near-zero gradients from being amplified to a full step.
                         "optimizer.warmup_steps=0", "optimizer.eps=1e-6"])
model = initial_model.load_initial_model(cfg)
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
