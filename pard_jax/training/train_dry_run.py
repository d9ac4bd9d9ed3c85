"""The training dry run: compile the training step for the configured mesh from the model's shape alone.

No weights, tokenizer, data or hub are read: the model's shape comes from `weights.sources.model_shape` (a local
config.json or the shape table), parameters, optimizer state and batch are ShapeDtypeStructs with their
shardings. The step is compiled twice, at the configured batch and at twice that, and the two memory analyses
give the peak bytes per device as fixed + per-row cost, hence the largest batch each accelerator holds.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from pard_jax import program_cost, sharding
from pard_jax.dtypes import dtype_of
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import init_params
from pard_jax.program_cost import ProgramMemory, RowFit, fit_table, fmt_bytes, fmt_flops
from pard_jax.training import pipeline, trainer
from pard_jax.training.checkpoint import abstract_like
from pard_jax.training.config import TrainConfig
from pard_jax.training.packing import ROW_FIELDS
from pard_jax.weights.sources import model_shape
from pard_jax.weights.tokenizer import check_mask_token


@dataclasses.dataclass(frozen=True)
class TrainDryRun:
    cfg: TrainConfig
    model: ModelConfig
    mesh: dict[str, int]
    platform: str
    num_params: int
    rows_per_device: int  # rows of one micro-batch on one device
    param_bytes: int  # per device, from the shardings
    opt_bytes: int
    batch_bytes: int
    memory: ProgramMemory  # the compiled step at the configured batch, per device
    flops: int  # one optimizer step, all devices together
    fit: RowFit | None  # None: not measured (`fit=False`)
    compile_seconds: float
    fit_compile_seconds: float


def model_without_weights(cfg: TrainConfig) -> trainer.InitialModel:
    """The run's initial model as a shape only (no weights, no tokenizer), with the mask id set."""
    m = cfg.model
    shape = model_shape(m.spec, m.num_layers) if m.spec is not None else ModelConfig.from_hf_dict(m.hf_config)
    mask = check_mask_token(cfg.pard.mask_token_id, shape.vocab_size, None, name="pard.mask_token_id")  # no tokenizer
    # A sub-vocabulary head's ids come from the data; any N ids give the same shapes.
    vocab = None if m.draft_vocab is None else tuple(range(min(m.draft_vocab, shape.vocab_size)))
    shape = dataclasses.replace(shape, pard_token=mask, draft_vocab=vocab)
    target = None
    if cfg.pard2.target is not None:  # PARD-2: the frozen target's shape, and the draft's target_proj
        target = trainer.TargetModel(model_shape(cfg.pard2.target), None, cfg.pard2.target)
        trainer.check_target_layers(cfg, target.cfg)
        shape, _ = trainer.with_pard2(cfg, shape, None, target)
    return trainer.InitialModel(shape, None, None, m.tokenizer or m.spec, target)


def compile_step(s: trainer.TrainSetup, batch_size: int):
    """(jaxpr, compiled step, abstract (params, opt_state, batch)) for `batch_size` rows per optimizer step."""
    params = abstract_like(s.abstract_params, s.param_shardings)
    opt_state = abstract_like(jax.eval_shape(s.optimizer.init, s.abstract_params), s.opt_shardings)
    a = s.cfg.train.grad_accum
    shape = (a, batch_size // a, s.cfg.data.row_length)
    fields = ROW_FIELDS + (("features",) if s.target_shardings is not None else ())
    batch = {f: jax.ShapeDtypeStruct(shape, jnp.int32, sharding=s.batch_sharding) for f in fields}
    target = None
    if s.target_shardings is not None:  # PARD-2's frozen target, in the compute dtype
        abstract = jax.eval_shape(lambda: init_params(s.model.target.cfg, jax.random.key(0),
                                                      dtype_of(s.cfg.train.compute_dtype)))
        target = abstract_like(abstract, s.target_shardings)
    traced = s.step_fn.trace(params, opt_state, batch, target)
    with sharding.use_mesh(s.mesh):
        compiled = traced.lower().compile(program_cost.compile_options(s.mesh.devices.flat[0].platform))
    return traced.jaxpr, compiled, (params, opt_state, batch)


def dry_run(cfg: TrainConfig, devices=None, *, fit: bool = True) -> TrainDryRun:
    """Compile the configured training step on `devices` (default: all) without weights, and measure it.
    `fit` compiles it again at twice the batch to measure the cost of a row."""
    pipeline.check_row_length(cfg)
    s = trainer.build_setup(cfg, model=model_without_weights(cfg), devices=devices)
    t0 = time.perf_counter()
    jaxpr, compiled, (params, opt_state, batch) = compile_step(s, cfg.train.batch_size)
    t1 = time.perf_counter()
    twice = ProgramMemory.of(compile_step(s, 2 * cfg.train.batch_size)[1]) if fit else None
    t2 = time.perf_counter()
    mesh = dict(s.mesh.shape)
    rows = cfg.train.batch_size // cfg.train.grad_accum // (mesh["data"] * mesh["fsdp"])
    memory = ProgramMemory.of(compiled)
    return TrainDryRun(
        cfg=cfg, model=s.model.cfg, mesh=mesh, platform=s.mesh.devices.flat[0].platform,
        num_params=sum(x.size for x in jax.tree.leaves(s.abstract_params)), rows_per_device=rows,
        param_bytes=program_cost.per_device_bytes(params), opt_bytes=program_cost.per_device_bytes(opt_state),
        batch_bytes=program_cost.per_device_bytes(batch), memory=memory, flops=program_cost.matmul_flops(jaxpr),
        fit=RowFit.from_two(rows, memory.peak, 2 * rows, twice.peak) if fit else None,
        compile_seconds=t1 - t0, fit_compile_seconds=t2 - t1)


def report(r: TrainDryRun) -> str:
    """The dry run as text for a person: model, mesh, memory per device, FLOPs, and the batch that fits."""
    c, m = r.cfg, r.model
    devices = r.mesh["data"] * r.mesh["fsdp"] * r.mesh["tensor"]
    budget = pipeline.check_row_length(c)
    name = c.model.spec or "model.hf_config"
    layers = f"{m.num_layers} layer(s)" + (" (model.num_layers)" if c.model.num_layers is not None else "")
    lines = [
        f"training dry run: nothing loaded (no weights, tokenizer or data); the step compiled for {devices} "
        f"{r.platform} device(s)",
        f"model       {name}: {layers}, hidden {m.hidden_size}, vocab {m.vocab_size}, "
        f"{r.num_params / 1e9:.3f}B parameters (float32), compute {c.train.compute_dtype}, "
        f"remat {'on' if c.train.remat else 'off'}",
        f"pard        k={c.pard.k}, r={c.pard.r}, r_min={c.pard.r_min}, mask id {c.pard.mask_token_id}; rows of "
        f"{c.data.row_length} tokens (a {c.data.max_length}-token sequence keeps at most {budget} after COD)",
        f"mesh        data={r.mesh['data']} fsdp={r.mesh['fsdp']} tensor={r.mesh['tensor']}; batch "
        f"{c.train.batch_size} rows per step, grad_accum {c.train.grad_accum}: {r.rows_per_device} row(s) per "
        "device per micro-batch",
        f"compiled    in {r.compile_seconds:.1f} s"
        + (f" (and at twice the batch in {r.fit_compile_seconds:.1f} s, for the fit below)" if r.fit else ""),
        "per device  (parameters, optimizer state, batch: their shards; the rest: the compiled step's memory "
        "analysis)",
        f"  parameters        {fmt_bytes(r.param_bytes):>11}",
        f"  optimizer state   {fmt_bytes(r.opt_bytes):>11}",
        f"  batch             {fmt_bytes(r.batch_bytes):>11}",
        f"  temporaries       {fmt_bytes(r.memory.temporaries):>11}   (activations, gradients, updates)",
        f"  peak              {fmt_bytes(r.memory.peak):>11}   (arguments + outputs - donated + temporaries)",
        f"FLOPs       {fmt_flops(r.flops)} per step, {fmt_flops(r.flops / devices)} per device (matrix "
        "products of the forward, backward" + (" and recomputed forward" if c.train.remat else "") + " passes)",
    ]
    if r.fit is not None:
        lines += fit_table(r.fit, r.rows_per_device, ways=devices // r.mesh["tensor"] * c.train.grad_accum,
                           unit=f"rows of {c.data.row_length} tokens per step at grad_accum {c.train.grad_accum}")
    if r.platform == "cpu":
        lines.append(program_cost.CPU_NOTE)
    return "\n".join(lines)

