"""The generation dry run: compile the (start, run) programs of an inference config from the models' shapes alone.

No weights, tokenizer or hub are read: target and draft shapes come from `weights.sources.model_shape` (a
local config.json or the shape table) and parameters are ShapeDtypeStructs in the config's dtype, placed on
the config's mesh (`speculative.placement`; simulate its devices on a CPU with
XLA_FLAGS=--xla_force_host_platform_device_count=N). The programs are compiled at the configured batch and
at twice that; the two memory analyses give the peak bytes per device as fixed + per-row cost, hence the
largest batch each accelerator holds at this prompt length and `max_new_tokens`.

With `topology` (--topology v5e-8) the programs are compiled for that TPU slice's chips by the TPU compiler
(libtpu; no TPU needed): its memory analysis per chip, its verdict (a program too big for a chip's HBM does not
compile), and the largest batch that compiles (`chip_fit.largest_rows`).
"""

from __future__ import annotations

import dataclasses
import time

import jax

from pard_jax import chip_fit, program_cost, topology as topologies
from pard_jax.chip_fit import DoesNotFit, Largest, Verdict
from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import init_params
from pard_jax.models.layout import unstack_layers
from pard_jax.program_cost import ProgramMemory, RowFit, fit_table, fmt_bytes, fmt_flops
from pard_jax.speculative import assemble, placement
from pard_jax.speculative.config import InferConfig, validate
from pard_jax.speculative.generator import compiled_programs, prompt_bucket, shape_signature
from pard_jax.speculative.loop import DecodeLoop, Mode
from pard_jax.weights.sources import model_shape

DEFAULT_PROMPT_LEN = 512


@dataclasses.dataclass(frozen=True)
class Programs:
    """The compiled (start, run) pair for one batch size (`generator.compiled_programs`), measured per device."""

    batch: int
    start: ProgramMemory  # prefill: parameters and prompts in, the loop state (caches) out
    run: ProgramMemory  # the decoding loop: parameters and the donated state in, the state out
    cache_bytes: tuple[int, int]  # the target's and the draft's KV caches
    flops: tuple[float, float]  # XLA's cost analysis of start (prefill) and run (one iteration: a loop body counts once)

    @classmethod
    def compile(cls, loop: DecodeLoop, tp, dp, batch: int, prompt_len: int, mesh=None) -> "Programs":
        start, run = compiled_programs(loop, batch, prompt_len, shape_signature(tp), shape_signature(dp), mesh)
        state = start.out_info
        return cls(batch, ProgramMemory.of(start), ProgramMemory.of(run),
                   (program_cost.per_device_bytes(state.target_cache), program_cost.per_device_bytes(state.draft_cache)),
                   (program_cost.xla_flops(start), program_cost.xla_flops(run)))

    @property
    def peak(self) -> int:
        return max(self.start.peak, self.run.peak)


@dataclasses.dataclass(frozen=True)
class InferDryRun:
    cfg: InferConfig
    loop: DecodeLoop
    prompt_len: int
    capacity: int  # cache entries per row
    target: topologies.CompileTarget
    param_bytes: tuple[int, int]  # the target's and the draft's
    programs: Programs | None  # at the configured batch; None: the TPU compiler refused them (`verdict`)
    fit: RowFit | None  # None: not measured (`fit=False`), or on a TPU topology (`largest`)
    compile_seconds: float
    fit_compile_seconds: float
    batch: int  # the configured batch, padded to a multiple of mesh.data
    verdict: Verdict | None = None  # on a TPU topology: whether the programs compiled within a chip's HBM
    largest: Largest | None = None  # on a TPU topology with `fit`: the most rows per chip that compile

    @property
    def platform(self) -> str:
        return self.target.platform


def abstract_params(cfg: ModelConfig, dtype, mesh=None, rules=()) -> dict:
    """ShapeDtypeStructs of a model's parameters in `dtype`, in the per-layer layout generation uses, placed on
    `mesh` by `rules` (or on one device)."""
    tree = jax.eval_shape(lambda: unstack_layers(init_params(cfg, jax.random.key(0))))
    if mesh is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, dtype), tree)
    shardings = placement.param_shardings(mesh, tree, rules)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, dtype, sharding=s), tree, shardings)


def decode_loop(c: InferConfig, layers: int | None = None, platform: str | None = None) -> DecodeLoop:
    """The config's DecodeLoop (`assemble.decode_loop`) from the models' shapes, for `platform`; `layers` keeps
    only the first N layers of each model."""
    validate(c)
    target = model_shape(c.target)
    draft = model_shape(c.draft, c.draft_layers) if c.mode.uses_draft else None
    if layers is not None:
        target = target.truncated(min(layers, target.num_layers))
        draft = draft and draft.truncated(min(layers, draft.num_layers))
        if draft is not None and draft.pard2 is not None:  # the cut target's last hidden state, as often (same shapes)
            n = target.num_layers
            kept = tuple(i if -(n + 1) <= i <= n else -1 for i in draft.pard2.target_layers)
            draft = dataclasses.replace(draft, pard2=dataclasses.replace(draft.pard2, target_layers=kept))
    placement.check_split(target, c.mesh.tensor, "target", "mesh.tensor")
    if draft is not None:
        placement.check_split(draft, c.mesh.draft_tensor, "draft", "mesh.draft_tensor")
    return assemble.decode_loop(assemble.with_stand_in_mask(c, draft), target, draft, eos_ids=target.eos_token_ids,
                                platform=platform)


def dry_run(c: InferConfig, *, prompt_len: int = DEFAULT_PROMPT_LEN, layers: int | None = None,
            fit: bool = True, platform: str | None = None, topology: str | None = None) -> InferDryRun:
    """Compile the config's generation programs for prompts of `prompt_len` tokens without weights, and measure
    them, on this machine's devices or for a TPU `topology` ("v5e-8"). `fit` compiles them again at twice the
    batch to measure the cost of a row (on a TPU topology: a bounded search of the batch that compiles).
    `platform` (cpu, gpu, tpu; default: the devices', "tpu" for a topology) chooses the kernels: the programs
    compiled are the ones that platform runs."""
    if prompt_len < 1:
        raise UserError(f"--prompt-len must be at least 1, got {prompt_len}")
    target = topologies.compile_target(topology)
    if target.topology is not None and platform not in (None, "tpu"):
        raise UserError(f"--topology {target.topology.name} compiles TPU programs; drop --platform {platform}")
    topologies.check_mesh_fits(target, c.mesh.size, f"mesh.data={c.mesh.data} x mesh.tensor={c.mesh.tensor}")
    mesh = placement.make_mesh(c.mesh, target.devices if target.topology else None)
    # The platform whose kernels and dtype the programs take: the one they are compiled for.
    loop = decode_loop(c, layers, platform or target.platform)
    if mesh is not None:
        loop = placement.on_mesh(loop)
    loop.check_context(prompt_len, c.max_cache_len, shorten="--prompt-len")
    prompt_len = prompt_bucket(prompt_len, c.prefill_chunk)  # what generation pads such a prompt to
    capacity = loop.capacity(prompt_len)
    dtype = loop.dtype
    tp = abstract_params(loop.target_cfg, dtype, mesh, placement.TARGET_RULES)
    dp = abstract_params(loop.draft_cfg, dtype, mesh, placement.DRAFT_RULES) if loop.draft_cfg is not None else None
    rows = c.mesh.data  # batch rows per device: B / rows
    B = placement.padded_batch(c.batch_size, rows)  # as generation pads a batch
    param_bytes = (program_cost.per_device_bytes(tp), program_cost.per_device_bytes(dp))

    def compile_at(batch: int) -> Programs:
        with target.no_disk_cache():
            return Programs.compile(loop, tp, dp, batch, prompt_len, mesh)

    t0 = time.perf_counter()
    if target.topology is None:
        programs = compile_at(B)
        t1 = time.perf_counter()
        twice = compile_at(2 * B) if fit else None
        return InferDryRun(
            cfg=c, loop=loop, prompt_len=prompt_len, capacity=capacity, target=target, param_bytes=param_bytes,
            programs=programs, fit=RowFit.from_two(B // rows, programs.peak, 2 * B // rows, twice.peak) if fit else None,
            compile_seconds=t1 - t0, fit_compile_seconds=time.perf_counter() - t1, batch=B)
    try:
        programs, verdict = chip_fit.try_compile(lambda: compile_at(B)), Verdict(True, "")
    except DoesNotFit as e:
        programs, verdict = None, Verdict(False, str(e))
    t1 = time.perf_counter()
    largest = None
    if fit:
        def peak_at(n: int) -> int | None:
            try:
                return chip_fit.try_compile(lambda: compile_at(n * rows)).peak
            except DoesNotFit:
                return None
        largest = chip_fit.largest_rows(peak_at, B // rows, programs and programs.peak, target.hbm)
    return InferDryRun(
        cfg=c, loop=loop, prompt_len=prompt_len, capacity=capacity, target=target, param_bytes=param_bytes,
        programs=programs, fit=None, compile_seconds=t1 - t0, fit_compile_seconds=time.perf_counter() - t1, batch=B,
        verdict=verdict, largest=largest)


def _describe(name: str, cfg: ModelConfig) -> str:
    return f"{name}: {cfg.num_layers} layer(s), hidden {cfg.hidden_size}, vocab {cfg.vocab_size}"


def _mask(r: InferDryRun) -> str:
    if r.loop.mode is not Mode.PARD:
        return ""
    if assemble.mask_unknown(r.cfg, r.loop.draft_cfg):
        return f", mask id {r.loop.mask_id} (a stand-in: the shape table holds no pard_token; pass --mask-token-id)"
    return f", mask id {r.loop.mask_id}"


def report(r: InferDryRun, layers: int | None = None) -> str:
    """The dry run as text for a person: programs, memory on the device, FLOPs, and the batch that fits."""
    c, loop, p = r.cfg, r.loop, r.programs
    cut = f" (first {layers} layers: --dry-run-layers)" if layers is not None else ""
    m = c.mesh
    tpu = r.target.topology is not None
    where = r.target.where(m.size) if tpu else \
        f"one {r.platform} device" if m.size == 1 else f"{m.size} {r.platform} devices"
    where += f" (mesh data={m.data} tensor={m.tensor} draft_tensor={m.draft_tensor})" if m.size > 1 else ""
    device = "chip" if tpu else "device"
    lines = [
        f"generation dry run: nothing loaded (no weights or tokenizer); compiled for {where}",
        f"target      {_describe(c.target, loop.target_cfg)}{cut}",
    ]
    if loop.draft_cfg is not None:
        lines.append(f"draft       {_describe(c.draft, loop.draft_cfg)}{cut}")
    lines += [
        f"decoding    mode {c.mode}" + (f", k={c.k}" if c.mode.uses_draft else "") + _mask(r) + f", {c.dtype}, batch "
        f"{r.batch}, prompts of {r.prompt_len} tokens + {c.max_new_tokens} new: {r.capacity} cache "
        "entries per row",
        f"kernels     {loop.kernels.describe()}",
        *([f"PARD-2      target-dependent: the draft reads the target's hidden states {list(loop.feature_layers)} "
           f"({loop.draft_cfg.pard2.target_dim} wide), k+1 of them kept per row"] if loop.target_dependent else []),
        f"compiled    start and run in {r.compile_seconds:.1f} s" + (
            f" (and in {r.fit_compile_seconds:.1f} s for the batch below)" if r.fit or r.largest else ""),
        f"per {device} (parameters and KV caches: their shards; the rest: the "
        f"{'TPU compiler' if tpu else 'compiled programs'}'s memory analysis)",
        f"  parameters        {fmt_bytes(sum(r.param_bytes)):>11}   (target {fmt_bytes(r.param_bytes[0])}, draft "
        f"{fmt_bytes(r.param_bytes[1])})",
    ]
    if p is not None:
        lines += [
            f"  KV caches         {fmt_bytes(sum(p.cache_bytes)):>11}   (target {fmt_bytes(p.cache_bytes[0])}, "
            f"draft {fmt_bytes(p.cache_bytes[1])})",
            f"  temporaries       {fmt_bytes(p.start.temporaries):>11}   prefill (start), "
            f"{fmt_bytes(p.run.temporaries)} decoding (run)",
            f"  peak              {fmt_bytes(p.peak):>11}   (the larger program's arguments + outputs - donated "
            "+ temporaries)",
        ]
        if tpu:
            lines.append(f"  HBM               {fmt_bytes(r.target.hbm):>11}   (what the TPU compiler plans with)")
        lines.append(f"FLOPs       prefill {fmt_flops(p.flops[0])}, one decoding iteration {fmt_flops(p.flops[1])} "
                     "(the whole batch; XLA's cost analysis of the compiled programs)")
    unit = f"rows (prompts of {r.prompt_len} tokens, {c.max_new_tokens} new tokens)"
    if r.verdict is not None:
        lines += chip_fit.report_lines(r.verdict, r.largest, r.target.hbm, what="the start and run programs",
                                       ways=m.data, unit=unit)
    if r.fit is not None:
        lines += fit_table(r.fit, r.batch // m.data, ways=m.data, unit=unit)
    if r.platform == "cpu":
        lines.append(program_cost.CPU_NOTE)
    return "\n".join(lines)
