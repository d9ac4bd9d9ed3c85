"""The training dry run: compile the training step for the configured mesh from the model's shape alone.

No weights, tokenizer, data or hub are read: the model's shape comes from `weights.sources.model_shape` (a local
config.json or the shape table), parameters, optimizer state and batch are ShapeDtypeStructs with their
shardings. The step is compiled twice, at the configured batch and at twice that, and the two memory analyses
give the peak bytes per device as fixed + per-row cost, hence the largest batch each accelerator holds.

With `topology` (--topology v5e-16) the step is compiled for that TPU slice's chips by the TPU compiler (libtpu;
no TPU needed): its memory analysis per chip, its verdict (a step too big for a chip's HBM does not compile) and
the largest per-chip batch that compiles (`chip_fit.largest_rows`).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from pard_jax import chip_fit, program_cost, sharding, topology as topologies
from pard_jax.chip_fit import DoesNotFit, Largest, Verdict
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import init_params
from pard_jax.program_cost import ProgramMemory, RowFit, fit_table, fmt_bytes, fmt_flops
from pard_jax.training import initial_model, pipeline, trainer
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
    target: topologies.CompileTarget
    num_params: int
    rows_per_device: int  # rows of one micro-batch on one device
    param_bytes: int  # per device, from the shardings
    opt_bytes: int
    batch_bytes: int
    memory: ProgramMemory | None  # the compiled step at the configured batch, per device; None: refused (`verdict`)
    flops: int  # one optimizer step, all devices together
    fit: RowFit | None  # None: not measured (`fit=False`), or on a TPU topology (`largest`)
    compile_seconds: float
    fit_compile_seconds: float
    verdict: Verdict | None = None  # on a TPU topology: whether the step compiled within a chip's HBM
    largest: Largest | None = None  # on a TPU topology with `fit`: the most rows per chip that compile

    @property
    def platform(self) -> str:
        return self.target.platform


def model_without_weights(cfg: TrainConfig) -> initial_model.InitialModel:
    """The run's initial model as a shape only (no weights, no tokenizer), with the mask id set."""
    m = cfg.model
    shape = model_shape(m.spec, m.num_layers) if m.spec is not None else ModelConfig.from_hf_dict(m.hf_config)
    mask = check_mask_token(cfg.pard.mask_token_id, shape.vocab_size, None, name="pard.mask_token_id")  # no tokenizer
    # A sub-vocabulary head's ids come from the data; any N ids give the same shapes.
    vocab = None if m.draft_vocab is None else tuple(range(min(m.draft_vocab, shape.vocab_size)))
    shape = dataclasses.replace(shape, pard_token=mask, draft_vocab=vocab)
    target = None
    if cfg.pard2.target is not None:  # PARD-2: the frozen target's shape, and the draft's target_proj
        target = initial_model.TargetModel(model_shape(cfg.pard2.target), None, cfg.pard2.target)
        initial_model.check_target_layers(cfg, target.cfg)
        shape, _ = initial_model.with_pard2(cfg, shape, None, target)
    return initial_model.InitialModel(shape, None, None, m.tokenizer or m.spec, target)


def trace_step(s: trainer.TrainSetup, batch_size: int):
    """(traced step, abstract (params, opt_state, batch)) for `batch_size` rows per optimizer step."""
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
    return s.step_fn.trace(params, opt_state, batch, target), (params, opt_state, batch)


def compile_traced(s: trainer.TrainSetup, traced, target: topologies.CompileTarget) -> ProgramMemory:
    """The traced step compiled for the target's devices (s.mesh's), measured per device. On a TPU topology it
    raises `chip_fit.DoesNotFit` when the compiler refuses it for want of memory."""
    with sharding.use_mesh(s.mesh), target.no_disk_cache():
        return ProgramMemory.of(chip_fit.try_compile(
            lambda: traced.lower().compile(program_cost.compile_options(target.platform))))


def dry_run(cfg: TrainConfig, devices=None, *, fit: bool = True, topology: str | None = None) -> TrainDryRun:
    """Compile the configured training step on `devices` (default: all) or for a TPU `topology` ("v5e-16")
    without weights, and measure it. `fit` compiles it again at twice the batch to measure the cost of a row
    (on a TPU topology: a bounded search of the per-chip batch that compiles)."""
    pipeline.check_row_length(cfg)
    # What the step is compiled for, decided once: target.platform ("tpu" for a topology) is the platform whose
    # kernels the step must use (the lead passes Kernels.for_platform(target.platform) to the training step).
    target = topologies.compile_target(topology)
    if target.topology is not None:
        devices = target.devices
        sizes = (cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
        try:
            sharding.resolve_mesh_shape(sizes, len(devices))
        except UserError as e:
            raise UserError(f"--topology {target.topology.name} has {len(devices)} chips: {e}") from None
    s = trainer.build_setup(cfg, model=model_without_weights(cfg), devices=devices)
    mesh = dict(s.mesh.shape)
    ways = mesh["data"] * mesh["fsdp"] * cfg.train.grad_accum  # rows of a step per row on one device
    rows = cfg.train.batch_size // ways
    t0 = time.perf_counter()
    traced, (params, opt_state, batch) = trace_step(s, cfg.train.batch_size)
    memory_at = lambda n: compile_traced(s, trace_step(s, n * ways)[0], target)  # noqa: E731
    verdict, largest, fitted = None, None, None
    try:
        memory = compile_traced(s, traced, target)
        verdict = Verdict(True, "")
    except DoesNotFit as e:
        memory, verdict = None, Verdict(False, str(e))
    t1 = time.perf_counter()
    if target.topology is None:
        verdict = None
        fitted = RowFit.from_two(rows, memory.peak, 2 * rows, memory_at(2 * rows).peak) if fit else None
    elif fit:
        def peak_at(n: int) -> int | None:
            try:
                return memory_at(n).peak
            except DoesNotFit:
                return None
        largest = chip_fit.largest_rows(peak_at, rows, memory and memory.peak, target.hbm)
    return TrainDryRun(
        cfg=cfg, model=s.model.cfg, mesh=mesh, target=target,
        num_params=sum(x.size for x in jax.tree.leaves(s.abstract_params)), rows_per_device=rows,
        param_bytes=program_cost.per_device_bytes(params), opt_bytes=program_cost.per_device_bytes(opt_state),
        batch_bytes=program_cost.per_device_bytes(batch), memory=memory, flops=program_cost.matmul_flops(traced.jaxpr),
        fit=fitted, compile_seconds=t1 - t0, fit_compile_seconds=time.perf_counter() - t1, verdict=verdict,
        largest=largest)


def report(r: TrainDryRun) -> str:
    """The dry run as text for a person: model, mesh, memory per device, FLOPs, and the batch that fits."""
    c, m = r.cfg, r.model
    devices = r.mesh["data"] * r.mesh["fsdp"] * r.mesh["tensor"]
    budget = pipeline.check_row_length(c)
    name = c.model.spec or "model.hf_config"
    layers = f"{m.num_layers} layer(s)" + (" (model.num_layers)" if c.model.num_layers is not None else "")
    tpu = r.target.topology is not None
    device = "chip" if tpu else "device"
    lines = [
        "training dry run: nothing loaded (no weights, tokenizer or data); the step compiled for "
        + (r.target.where(devices) if tpu else f"{devices} {r.platform} device(s)"),
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
        f"per {device:<7} (parameters, optimizer state, batch: their shards; the rest: the "
        f"{'TPU compiler' if tpu else 'compiled step'}'s memory analysis)",
        f"  parameters        {fmt_bytes(r.param_bytes):>11}",
        f"  optimizer state   {fmt_bytes(r.opt_bytes):>11}",
        f"  batch             {fmt_bytes(r.batch_bytes):>11}",
    ]
    if r.memory is not None:
        lines += [
            f"  temporaries       {fmt_bytes(r.memory.temporaries):>11}   (activations, gradients, updates)",
            f"  peak              {fmt_bytes(r.memory.peak):>11}   (arguments + outputs - donated + temporaries)",
        ]
    if tpu:
        lines.append(f"  HBM               {fmt_bytes(r.target.hbm):>11}   (what the TPU compiler plans with)")
    lines += [
        f"FLOPs       {fmt_flops(r.flops)} per step, {fmt_flops(r.flops / devices)} per device (matrix "
        "products of the forward, backward" + (" and recomputed forward" if c.train.remat else "") + " passes)",
    ]
    ways = devices // r.mesh["tensor"] * c.train.grad_accum
    unit = f"rows of {c.data.row_length} tokens per step at grad_accum {c.train.grad_accum}"
    if r.verdict is not None:
        lines += chip_fit.report_lines(r.verdict, r.largest, r.target.hbm, what="the step", ways=ways, unit=unit)
    if r.fit is not None:
        lines += fit_table(r.fit, r.rows_per_device, ways=ways, unit=unit)
    if r.platform == "cpu":
        lines.append(program_cost.CPU_NOTE)
    return "\n".join(lines)

