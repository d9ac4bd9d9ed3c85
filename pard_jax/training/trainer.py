"""Training a PARD draft: the mesh and jitted step (`TrainSetup`) for the initial model
(`training.initial_model`), and the run loop.

`run(cfg)` writes RUN_DIR/checkpoints (orbax: params, optimizer state, step, data iterator; resumed
automatically), RUN_DIR/metrics.jsonl (one object per logged step) and RUN_DIR/config.yaml. On several hosts
every host runs it with distributed.enabled=true (see docs/training.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import jax
import numpy as np
import yaml
from tqdm import tqdm

from pard_jax import distributed, sharding
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.models.decoder import init_params, param_logical_axes
from pard_jax.training import checkpoint, pard2, pipeline
from pard_jax.training import step as train_step
from pard_jax.training.config import TrainConfig
from pard_jax.training.initial_model import InitialModel, load_initial_model


def optimizer_for(cfg: TrainConfig):
    """(optimizer, learning-rate schedule) of the config's optimizer section."""
    o = cfg.optimizer
    schedule = train_step.learning_rate_schedule(o.learning_rate, o.warmup_steps, cfg.train.steps, o.schedule,
                                                 o.final_lr_fraction)
    opt = train_step.make_optimizer(schedule, weight_decay=o.weight_decay, b1=o.b1, b2=o.b2, eps=o.eps,
                                    clip_norm=o.clip_norm, frozen=tuple(cfg.model.freeze))
    return opt, schedule


@dataclasses.dataclass
class TrainSetup:
    """Everything a run needs, built from the config."""

    cfg: TrainConfig
    model: InitialModel
    mesh: Any
    abstract_params: Any  # ShapeDtypeStructs
    param_shardings: Any
    opt_shardings: Any
    optimizer: Any
    schedule: Any  # jitted: step -> learning rate
    step_fn: train_step.ShardedStep
    batch_sharding: Any
    target_shardings: Any = None  # PARD-2: the frozen target's params, sharded like the draft's


def build_setup(cfg: TrainConfig, model: InitialModel | None = None, devices=None) -> TrainSetup:
    """Mesh, shardings, optimizer and the jitted step (nothing allocated yet)."""
    model = model or load_initial_model(cfg)
    mesh = sharding.make_mesh((cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor), devices)
    batch_ways = mesh.shape["data"] * mesh.shape["fsdp"]
    micro = cfg.train.batch_size // cfg.train.grad_accum
    if micro % batch_ways or micro % jax.process_count():
        raise UserError(f"train.batch_size / train.grad_accum = {micro} rows must be a multiple of mesh data x fsdp "
                        f"= {batch_ways} and of the {jax.process_count()} processes; change train.batch_size or the mesh")
    abstract = jax.eval_shape(lambda: init_params(model.cfg, jax.random.key(0)))
    unknown = sorted(set(cfg.model.freeze) - set(abstract))
    if unknown:
        raise UserError(f"model.freeze names {unknown}, which the model does not have; choose from {sorted(abstract)}")
    param_shardings = sharding.tree_shardings(mesh, abstract, param_logical_axes(model.cfg))
    optimizer, schedule = optimizer_for(cfg)
    opt_shardings = train_step.opt_state_shardings(optimizer, abstract, param_shardings, mesh)
    objective = target_shardings = None
    if model.target is not None:
        p2 = cfg.pard2
        objective = pard2.Objective(model.target.cfg, pipeline.base_length(cfg), p2.ce_alpha, p2.kd_alpha,
                                    p2.kd_temperature, p2.cat, p2.precondition, p2.proj_lr_multiplier)
        target_abstract = jax.eval_shape(lambda: init_params(model.target.cfg, jax.random.key(0)))
        target_shardings = sharding.tree_shardings(mesh, target_abstract, param_logical_axes(model.target.cfg))
    step_fn = train_step.jit_train_step(
        model.cfg, optimizer, mesh, param_shardings, opt_shardings, k=cfg.pard.k,
        dtype=dtype_of(cfg.train.compute_dtype), remat=cfg.train.remat, frozen=tuple(cfg.model.freeze),
        embed_rows=tuple(cfg.model.train_embed_rows), objective=objective, target_shardings=target_shardings)
    return TrainSetup(cfg, model, mesh, abstract, param_shardings, opt_shardings, optimizer, jax.jit(schedule),
                      step_fn, train_step.batch_sharding(mesh), target_shardings)


def initial_state(s: TrainSetup):
    """Sharded params (loaded or random) and a fresh optimizer state."""
    with sharding.use_mesh(s.mesh):
        if s.model.host_params is not None:
            params = sharding.put_global(s.model.host_params, s.param_shardings)
        else:
            init = jax.jit(lambda key: init_params(s.model.cfg, key), out_shardings=s.param_shardings)
            params = init(jax.random.key(s.cfg.model.init_seed))
        opt_state = jax.jit(s.optimizer.init, out_shardings=s.opt_shardings)(params)
    return params, opt_state


def global_batch(s: TrainSetup, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows [b, T] -> global [A, B, T] arrays sharded over the batch mesh axes."""
    a = s.cfg.train.grad_accum
    b, t = next(iter(local.values())).shape
    shaped = {k: v.reshape(a, b // a, t) for k, v in local.items()}
    gshape = (a, s.cfg.train.batch_size // a, t)
    return {k: jax.make_array_from_process_local_data(s.batch_sharding, v, gshape) for k, v in shaped.items()}


def checkpoint_meta(s: TrainSetup) -> dict:
    return {"model": s.model.cfg.to_hf_dict(), "tokenizer_source": s.model.tokenizer_source,
            "pard": dataclasses.asdict(s.cfg.pard), "frozen": list(s.cfg.model.freeze),
            "train_embed_rows": list(s.cfg.model.train_embed_rows)}


def _trim_metrics(path: str, last_step: int) -> None:
    """Drop logged steps after `last_step` (written by a run that stopped before checkpointing them)."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= last_step]
    with open(path, "w") as f:
        f.writelines(lines)


def run(cfg: TrainConfig, *, stop_after: int | None = None, progress: bool = True, devices=None) -> list[dict]:
    """Train from the latest complete checkpoint in cfg.run_dir (or from the start) to train.steps (or
    train.stop_at, where a checkpoint is saved too).

    `stop_after` ends this invocation after that many steps as a kill would: without a final checkpoint
    (a later run resumes from the last periodic one). Returns the logged metrics.
    """
    distributed.initialize(cfg.distributed)
    s = build_setup(cfg, devices=devices)
    main = jax.process_index() == 0
    os.makedirs(cfg.run_dir, exist_ok=True)
    ckpt = checkpoint.Checkpointer(cfg.run_dir, every=cfg.checkpoint.every, keep=cfg.checkpoint.keep)
    meta = checkpoint_meta(s)
    batches = pipeline.train_batches(cfg, s.model.tokenizer, process_index=jax.process_index(),
                                     process_count=jax.process_count())
    start = ckpt.latest_step() or 0
    if start:
        checkpoint.check_same_model(ckpt.read_meta(start), meta["model"], cfg.run_dir)
        abstract_opt = jax.eval_shape(s.optimizer.init, s.abstract_params)
        params, opt_state = ckpt.restore(start, checkpoint.abstract_like(s.abstract_params, s.param_shardings),
                                         checkpoint.abstract_like(abstract_opt, s.opt_shardings), batches)
    else:
        params, opt_state = initial_state(s)
    target_params = None
    if s.model.target is not None:
        with sharding.use_mesh(s.mesh):
            target_params = sharding.put_global(s.model.target.host_params, s.target_shardings)
    metrics_path = os.path.join(cfg.run_dir, "metrics.jsonl")
    if main:
        with open(os.path.join(cfg.run_dir, "config.yaml"), "w") as f:
            yaml.safe_dump(dataclasses.asdict(cfg), f, sort_keys=False)
        _trim_metrics(metrics_path, start)
    last = cfg.train.stop_at or cfg.train.steps
    end = last if stop_after is None else min(last, start + stop_after)
    logged: list[dict] = []
    bar = _progress_bar(start, cfg.train.steps, enabled=progress and main)
    pending, t0 = [], time.perf_counter()
    for step in range(start + 1, end + 1):
        params, opt_state, metrics = s.step_fn(params, opt_state, global_batch(s, next(batches)), target_params)
        pending.append(metrics)
        bar.update(1)
        if step % cfg.train.log_every == 0 or step == end:
            record = _log_record(step, pending, t0, float(s.schedule(step - 1)))
            pending, t0 = [], time.perf_counter()
            logged.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc0=f"{record['accuracy_by_block'][0]:.2f}",
                            tok_s=f"{record['tokens_per_second']:.0f}")
            if main:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
        if cfg.checkpoint.every > 0:
            ckpt.save(step, params, opt_state, batches, meta, force=step == last)
    bar.close()
    ckpt.close()
    return logged


def _log_record(step: int, pending: list, since: float, lr: float) -> dict:
    """One metrics.jsonl object: means over the steps since the last log; rates over their wall time."""
    got = [train_step.host_metrics(m) for m in pending]  # waits for the device
    seconds = time.perf_counter() - since
    positions = sum(m["positions"] for m in got)
    return {
        "step": step,
        "loss": float(np.mean([m["loss"] for m in got])),
        "ce": float(np.mean([m["ce"] for m in got])),
        "kd": float(np.mean([m["kd"] for m in got])),
        "accuracy_by_block": np.mean([m["accuracy_by_block"] for m in got], axis=0).round(6).tolist(),
        **{f"accuracy_by_block_{p}": _split_accuracy([m[f"hits_by_block_{p}"] for m in got])
           for p in ("td", "ti") if f"hits_by_block_{p}" in got[0]},  # PARD-2: with and without features
        "tokens_per_second": positions / seconds,  # real sequence positions (block 0, no padding)
        "packed_tokens_per_second": sum(m["kept"] for m in got) / seconds,  # all kept tokens, mask blocks too
        "lr": lr,
        "grad_norm": float(np.mean([m["grad_norm"] for m in got])),
    }


def _split_accuracy(hits: list) -> list:
    """Accuracy by block over steps' [hits, count] sums (None for a block no step had a token in)."""
    correct, count = np.sum(np.asarray(hits, np.float64), axis=0)
    return [None if n == 0 else round(float(c / n), 4) for c, n in zip(correct, count)]


def _progress_bar(start: int, total: int, enabled: bool):
    return tqdm(total=total, initial=start, disable=not enabled, desc="train", unit="step", dynamic_ncols=True)
