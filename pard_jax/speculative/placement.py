"""Where generation's arrays live: the inference mesh, the target's and the draft's sharding rules, and the
check that a model can be split the way the config asks.

The mesh has three axes: `data` (batch rows), `target_only` and `tensor`. The target splits attention heads,
KV heads, MLP columns and the vocabulary over `target_only` x `tensor` (its tensor degree, `mesh.tensor`);
the draft over `tensor` alone (`mesh.draft_tensor`, a divisor of it; 1 = every device holds the whole
draft). So the draft is placed independently of the target: a small draft need not be split as finely as
its target, which vLLM forces. There is no FSDP at decode time: every device keeps its weight slices for the
whole run. The KV caches follow their model's heads (`models.cache.LOGICAL_AXES`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pard_jax import sharding
from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.weights.table import logical_axes

AXES = ("data", "target_only", "tensor")


@dataclasses.dataclass
class InferMesh:
    """The devices generation runs on: batch rows over `data`, the target's heads over `tensor` devices, the
    draft's over `draft_tensor` of them; data x tensor devices in all (every device of a multi-host run)."""

    data: int = 1
    tensor: int = 1
    draft_tensor: int = 1

    @property
    def size(self) -> int:
        return self.data * self.tensor


def decode_axis_rules(tensor_axes) -> tuple[tuple[str, Any], ...]:
    """Logical axis -> mesh axes at decode time: batch over data, heads / MLP / vocabulary over `tensor_axes`."""
    split = ("vocab", "q_heads", "kv_heads", "mlp", "act_heads", "act_mlp")
    return (("batch", "data"),) + tuple((name, tensor_axes) for name in split)


TARGET_RULES = decode_axis_rules(("target_only", "tensor"))
DRAFT_RULES = decode_axis_rules("tensor")


def check_mesh(m: InferMesh, num_devices: int, multi_process: bool = False) -> None:
    """Refuse, in one sentence, a mesh this run's devices cannot hold or whose draft degree does not divide."""
    for name in ("data", "tensor", "draft_tensor"):
        if getattr(m, name) < 1:
            raise UserError(f"mesh.{name} must be at least 1, got {getattr(m, name)}")
    if m.size > num_devices or (multi_process and m.size != num_devices):
        raise UserError(f"mesh.data={m.data} x mesh.tensor={m.tensor} needs {m.size} devices but this run has "
                        f"{num_devices}; make their product {num_devices}" +
                        (" (a multi-host run uses every device)" if multi_process else " or less"))
    if m.tensor % m.draft_tensor:
        raise UserError(f"mesh.draft_tensor={m.draft_tensor} must divide mesh.tensor={m.tensor}; use one of "
                        f"{_divisors(m.tensor)}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_split(cfg: ModelConfig, degree: int, who: str, key: str) -> None:
    """Refuse, in one sentence, a tensor degree that does not divide the model's heads, KV heads and MLP."""
    dims = {"attention heads": cfg.num_heads, "KV heads": cfg.num_kv_heads, "MLP columns": cfg.intermediate_size}
    bad = [f"{n} {name}" for name, n in dims.items() if n % degree]
    if bad:
        ok = [d for d in _divisors(math.gcd(*dims.values())) if d <= max(degree, 64)]
        raise UserError(f"the {who} cannot be split over {key}={degree}: its {' and '.join(bad)} do not divide "
                        f"by {degree}; use {key} in {ok}")


def make_mesh(m: InferMesh, devices=None) -> Mesh | None:
    """The generation mesh over the first data x tensor of `devices` (default: this run's devices, all of them
    in a multi-host run; None for one of them: no sharding). Given devices (a TPU topology a dry run compiles
    for) always get a mesh, one device's included."""
    given = devices is not None
    devices = list(devices) if given else jax.devices()
    check_mesh(m, len(devices), jax.process_count() > 1 and not given)
    if m.size == 1 and not given:
        return None
    return sharding.make_mesh((m.data, m.tensor // m.draft_tensor, m.draft_tensor), devices[:m.size], AXES)


def sharding_of(mesh: Mesh, model_rules):
    """(param path in the per-layer layout, shape) -> its NamedSharding by the param's logical axes (declared
    in the conversion table, `weights.table.logical_axes`; dimensions the mesh axes do not divide are
    replicated); what loaders that place weights as they read them call."""
    return lambda path, shape: sharding.named_sharding(mesh, shape, logical_axes(path, stacked=False), model_rules)


def param_shardings(mesh: Mesh, params: dict, model_rules) -> dict:
    """NamedShardings for a per-layer params tree."""
    of = sharding_of(mesh, model_rules)
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict({k: of(k, v.shape) for k, v in flat.items()}, sep="/")


def padded_batch(rows: int, data: int) -> int:
    """A batch of `rows` padded to a multiple of the mesh's `data` size (each device gets whole rows)."""
    return -(-rows // data) * data


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Rows over `data`, the rest replicated (prompts, lengths, flags)."""
    return NamedSharding(mesh, P("data", *([None] * (ndim - 1))))


@functools.lru_cache(maxsize=8)
def _replicate_jit(mesh: Mesh):
    return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, P()))


def gather(tree, mesh: Mesh):
    """Host numpy copies of global arrays whose rows or columns may lie on other devices and hosts: they are
    replicated on the mesh first, so every process gets the whole value."""
    return jax.device_get(_replicate_jit(mesh)(tree))


def on_mesh(loop):
    """A DecodeLoop whose programs constrain each model's activations and caches by its rules."""
    return dataclasses.replace(loop, target_rules=TARGET_RULES, draft_rules=DRAFT_RULES)
