"""What a dry run compiles for: this machine's devices, or a TPU topology by the name people rent it by.

`--topology v5e-8` (v5e-N, v6e-N: N chips; v4-N, v5p-N: N TensorCores, two per chip; an `xS` suffix: S slices)
names TPU devices that libtpu, the TPU compiler, describes on any Linux x86-64 machine without a TPU. Programs
compiled for them are the ones those chips would run, with the TPU compiler's own memory analysis, and are never
run here. `compile_target` is the one place a dry run decides the platform it compiles for.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re

import jax
from jax._src import config as jax_config

from pard_jax.errors import UserError

GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Generation:
    jax_name: str  # topology_name prefix of jax.experimental.topologies
    chip_config: str  # "megacore": one device per chip of two TensorCores
    cores_per_chip: int  # the rented name counts these (v4-16: 8 chips)
    dims: int  # 2: a 2-D torus (v5e, v6e), 3: a 3-D one
    hbm: int  # bytes per chip the TPU compiler plans with (its out-of-memory message, libtpu 0.0.42.1)


GENERATIONS = {
    "v5e": Generation("v5e", "default", 1, 2, int(15.75 * GIB)),
    "v6e": Generation("v6e", "default", 1, 2, int(31.25 * GIB)),
    "v4": Generation("v4", "megacore", 2, 3, int(30.75 * GIB)),
    "v5p": Generation("v5", "megacore", 2, 3, int(95.74 * GIB)),
}
EXAMPLES = "v5e-8, v5e-16, v6e-8, v5p-8, v4-16 or v5e-16x2 (two slices)"


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # as given: "v5e-16", "v5p-8x2"
    generation: str  # a key of GENERATIONS
    chips: int  # per slice
    slices: int = 1

    @classmethod
    def parse(cls, name: str) -> "Topology":
        m = re.fullmatch(r"(v5e|v6e|v4|v5p)-(\d+)(?:x(\d+))?", name.strip().lower())
        if not m:
            raise UserError(f"--topology {name!r} is not a TPU topology name; use one like {EXAMPLES}")
        gen = GENERATIONS[m[1]]
        count, slices = int(m[2]), int(m[3] or 1)
        chips = count // gen.cores_per_chip
        if count % gen.cores_per_chip or chips < 1 or chips & (chips - 1) or slices < 1:
            raise UserError(f"--topology {name}: a {m[1]} slice of {count} has no chip grid; use a power of two"
                            f"{' of at least 2 (it counts TensorCores, two per chip)' if gen.cores_per_chip == 2 else ''}"
                            f", e.g. {EXAMPLES}")
        return cls(name, m[1], chips, slices)

    @property
    def devices_count(self) -> int:
        return self.chips * self.slices

    @property
    def hbm(self) -> int:
        return GENERATIONS[self.generation].hbm

    def grid(self) -> tuple[int, ...]:
        """The slice's chip grid: v5e-8 is 2x4, v5e-16 4x4; v5p-8 (4 chips) 2x2x1, v5p-16 2x2x2, v5p-32 2x2x4."""
        dims = GENERATIONS[self.generation].dims
        sides = [1] * dims
        for i in range(int(math.log2(self.chips))):  # double the sides in turn
            sides[i % dims] *= 2
        sides = sorted(sides)
        return tuple(sides[1:] + sides[:1]) if dims == 3 and sides[0] == 1 else tuple(sides)

    def devices(self) -> list:
        """The topology's devices (one per chip), for a mesh to be laid on; compiling for them needs no TPU."""
        if importlib.util.find_spec("libtpu") is None:
            raise UserError("--topology needs libtpu, the TPU compiler (Linux x86-64): pip install -e '.[tpu]' "
                            "(or `make setup`, which installs it)")
        from jax.experimental import topologies

        gen = GENERATIONS[self.generation]
        grid = self.grid()
        per_host = (2, 2, 1) if gen.dims == 3 else (min(grid[0], 2), min(grid[1], 2), 1)
        topo = topologies.get_topology_desc(
            topology_name=f"{gen.jax_name}:{'x'.join(map(str, grid))}", platform="tpu",
            chip_config_name=gen.chip_config, chips_per_host_bounds=per_host, num_slices=self.slices)
        return list(topo.devices)


@dataclasses.dataclass(frozen=True)
class CompileTarget:
    """The devices a dry run lays its mesh on and the platform whose programs it compiles."""

    platform: str  # "cpu", "gpu" or "tpu": whose compiler, and whose kernels the programs use
    devices: tuple
    topology: Topology | None = None  # None: this machine's devices

    @property
    def hbm(self) -> int | None:
        return self.topology.hbm if self.topology else None

    def no_disk_cache(self):
        """Context for compiling: on a TPU topology, without the on-disk compilation cache (a program compiled
        for chips that are not here cannot be read back from it: jax warns on every hit)."""
        return jax_config.enable_compilation_cache(self.topology is None)

    def where(self, used: int) -> str:
        """The topology, and `used` of its chips, in words."""
        t = self.topology
        kind = self.devices[0].device_kind
        spare = f" (the mesh uses {used} of its {len(self.devices)} chips)" if used < len(self.devices) else ""
        return f"a TPU {t.name}: {len(self.devices)} {kind} chip(s) of {t.hbm / GIB:.2f} GiB{spare}"


def compile_target(topology: str | None) -> CompileTarget:
    """THE place a dry run decides what it compiles for: with `topology` (--topology), that TPU slice's devices
    and the platform "tpu"; else this machine's devices and their platform. The platform is what chooses the
    model's kernels (`models.kernels.Kernels.for_platform(target.platform)`, passed to the decode loop and the
    training step), so the program compiled is the one that platform runs."""
    if topology is None:
        devices = tuple(jax.devices())
        return CompileTarget(devices[0].platform, devices)
    t = Topology.parse(topology)
    return CompileTarget("tpu", tuple(t.devices()), t)


def check_mesh_fits(target: CompileTarget, needed: int, what: str) -> None:
    """Refuse, in one sentence, a mesh of `needed` devices that a topology does not have."""
    if target.topology is not None and needed > len(target.devices):
        raise UserError(f"the config's mesh ({what}) needs {needed} chips but a {target.topology.name} has "
                        f"{len(target.devices)}; choose a larger --topology or a smaller mesh")
