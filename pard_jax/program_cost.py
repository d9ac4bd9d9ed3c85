"""What a compiled program costs on each device, and how many batch rows fit an accelerator's memory.

Memory comes from XLA's own analysis of the compiled program (per device: the partitioned program is what
each device runs). FLOPs come either from XLA's cost analysis (`xla_flops`: the optimized program, but a loop
body counts once) or from the program's jaxpr (`matmul_flops`: matrix products only, a `scan` body once per
iteration), which a training step whose layers are one `nn.scan` needs.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from jax.extend import core as jex_core

GiB = 1 << 30
MiB = 1 << 20
# Part of a device's memory a program may plan to fill; the rest is for the runtime and fragmentation. (On GPUs
# JAX preallocates 75% by default: set XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 to get this much.)
USABLE_FRACTION = 0.9

# Printed under a dry run compiled for CPU devices.
CPU_NOTE = ("note        compiled by the CPU compiler: a GPU or TPU compile fuses and lays out buffers differently, and "
            "a CPU, having no bfloat16 matrix products, makes float32 copies of bfloat16 operands (weights "
            "included) that count among the temporaries here; read the memory figures as estimates, and for "
            "bfloat16 programs as upper bounds")


def compile_options(platform: str) -> dict:
    """XLA options for compiling a program that is only measured, never run: on a CPU, skip LLVM's optimization
    of the generated code (half the compile time; the memory analysis is the same)."""
    return {"xla_backend_optimization_level": 0} if platform == "cpu" else {}


@dataclasses.dataclass(frozen=True)
class Accelerator:
    name: str
    memory: int  # bytes of HBM per device (a TPU chip, a GPU)
    bandwidth: float  # peak HBM bytes per second (the vendor's figure)
    kinds: tuple[str, ...] = ()  # substrings of jax's `device_kind` that name it


ACCELERATORS = (
    Accelerator("TPU v4", 32 * GiB, 1228e9, ("TPU v4",)),
    Accelerator("TPU v5e", 16 * GiB, 819e9, ("TPU v5 lite", "TPU v5e")),
    Accelerator("TPU v5p", 95 * GiB, 2765e9, ("TPU v5p", "TPU v5")),
    Accelerator("TPU v6e", 32 * GiB, 1640e9, ("TPU v6 lite", "TPU v6e", "TPU v6")),
    Accelerator("A100 80GB", 80 * GiB, 2039e9, ("A100",)),
    Accelerator("H100 80GB", 80 * GiB, 3350e9, ("H100",)),
    Accelerator("H200", 141 * 10**9, 4800e9, ("H200",)),
)


def accelerator_of(device_kind: str) -> Accelerator | None:
    """The table's entry for a jax `device_kind` (e.g. "NVIDIA H200", "TPU v5 lite"), or None (a CPU, or a device
    the table does not have)."""
    for a in ACCELERATORS:
        if any(k.lower() in device_kind.lower() for k in a.kinds):
            return a
    return None


@dataclasses.dataclass(frozen=True)
class ProgramMemory:
    """Bytes per device of one compiled program (`compiled.memory_analysis()`)."""

    arguments: int
    outputs: int
    aliased: int  # outputs that reuse a donated argument's buffer
    temporaries: int

    @classmethod
    def of(cls, compiled) -> "ProgramMemory":
        m = compiled.memory_analysis()
        return cls(int(m.argument_size_in_bytes), int(m.output_size_in_bytes), int(m.alias_size_in_bytes),
                   int(m.temp_size_in_bytes))

    @property
    def peak(self) -> int:
        """Live at once at most: arguments, outputs that are not donated arguments, and temporaries."""
        return self.arguments + self.outputs - self.aliased + self.temporaries


def per_device_bytes(tree) -> int:
    """Bytes one device holds of a tree of arrays / ShapeDtypeStructs: each leaf's shard under its own sharding,
    or the whole leaf when it has none."""
    total = 0
    for x in jax.tree.leaves(tree):
        s = getattr(x, "sharding", None)
        shape = s.shard_shape(x.shape) if s is not None else x.shape
        total += math.prod(shape) * np.dtype(x.dtype).itemsize
    return total


def xla_flops(compiled) -> float:
    """FLOPs per device of a compiled program by XLA's cost analysis (of the optimized program: work the
    compiler removed is not counted; a loop body counts once)."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", 0.0))


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, jex_core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jex_core.Jaxpr):
                yield v


def matmul_flops(jaxpr) -> int:
    """FLOPs of the matrix products (`dot_general`, 2 per multiply-add) of a (closed) jaxpr, nested ones included.

    A `scan` body counts `length` times, a `while` body once (one iteration), a `cond` its costliest branch.
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
            continue
        inner = [matmul_flops(j) for j in _sub_jaxprs(eqn)]
        if name == "cond":
            total += max(inner, default=0)
        else:
            total += eqn.params.get("length", 1) * sum(inner) if name == "scan" else sum(inner)
    return total


@dataclasses.dataclass(frozen=True)
class RowFit:
    """Peak bytes per device as a line in the batch rows per device: fixed + per_row * rows.

    Measured from two compilations of the same program at two batch sizes (`from_two`).
    """

    fixed: float
    per_row: float

    @classmethod
    def from_two(cls, rows_a: int, peak_a: int, rows_b: int, peak_b: int) -> "RowFit":
        per_row = (peak_b - peak_a) / (rows_b - rows_a)
        return cls(fixed=peak_a - per_row * rows_a, per_row=per_row)

    def rows(self, memory: int) -> int:
        """The most rows per device whose peak stays within USABLE_FRACTION of `memory` (0: none fit)."""
        # per_row > 0: a row adds at least its own input bytes.
        return max(int((USABLE_FRACTION * memory - self.fixed) // self.per_row), 0)


def fit_table(fit: RowFit, rows: int, *, ways: int, unit: str) -> list[str]:
    """Lines: the largest batch (in `unit`, = rows per device x `ways`) that fits each accelerator."""
    out = [f"fits        peak per device = {fmt_bytes(fit.fixed)} + {fmt_bytes(fit.per_row)} per row (from the "
           f"compiles at {rows} and {2 * rows} rows per device); the largest batch within "
           f"{USABLE_FRACTION:.0%} of a device's memory, in {unit}:"]
    for acc in ACCELERATORS:
        n = fit.rows(acc.memory)
        got = f"{n * ways} ({n} per device)" if n else "none (not even one row per device)"
        out.append(f"  {acc.name:<10} {fmt_bytes(acc.memory):>11}   {got}")
    return out


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if abs(n) >= GiB else f"{n / MiB:.1f} MiB"


def fmt_flops(n: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1e6:.2f} MFLOP"
