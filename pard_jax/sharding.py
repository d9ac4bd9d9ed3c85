"""The device mesh and the one table that maps the model's logical axis names to mesh axes.

Model code names axes logically (vocab, embed, q_heads, ... for parameters; batch, length, act_* for
activations); only `LOGICAL_AXIS_RULES` says which mesh axis (data, fsdp, tensor) shards each. The same
code runs on 1 CPU, simulated CPU devices, a GPU host or a TPU pod slice.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from pard_jax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")

# Batch over data x fsdp; parameters' `embed` dimension over fsdp (FSDP: each device holds a slice of every
# weight, gathered per layer); heads, MLP and vocab over tensor (Megatron-style). Unlisted names: replicated.
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("head_dim", None),
    ("norm", None),
    ("layers", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("features", None),  # a PARD-2 draft's input from the target's hidden states
)


def resolve_mesh_shape(sizes: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replace one -1 by the devices left over; the product must equal `num_devices`."""
    sizes = list(sizes)
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known <= 0 or num_devices % known:
            raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))} does not fit {num_devices} devices; "
                            f"make the fixed axis sizes divide {num_devices}")
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise UserError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but this run has "
                        f"{num_devices}; make the mesh sizes multiply to {num_devices} (or set one to -1)")
    return tuple(sizes)


def make_mesh(sizes: Sequence[int], devices: Sequence[jax.Device] | None = None,
              axis_names: Sequence[str] = MESH_AXES) -> Mesh:
    """A mesh with `axis_names` over `devices` (default: all devices of all processes); -1 fills the rest."""
    devices = list(devices) if devices is not None else jax.devices()
    shape = resolve_mesh_shape(sizes, len(devices))
    return jax.make_mesh(shape, tuple(axis_names), axis_types=(AxisType.Auto,) * len(shape), devices=devices)


def logical_to_mesh(logical: P | Sequence[str | None], rules=LOGICAL_AXIS_RULES) -> P:
    """The mesh PartitionSpec for a logical one (names not in `rules` are replicated)."""
    return nn.logical_to_mesh_axes(tuple(logical), rules)


def _axis_size(mesh: Mesh, axes) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def named_sharding(mesh: Mesh, shape: Sequence[int], logical, rules=LOGICAL_AXIS_RULES) -> NamedSharding:
    """NamedSharding of an array of `shape` with logical axes; a dimension its mesh axes do not divide is replicated."""
    spec = list(logical_to_mesh(logical, rules)) if logical is not None else []
    spec += [None] * (len(shape) - len(spec))
    spec = [axes if dim % _axis_size(mesh, axes) == 0 else None for dim, axes in zip(shape, spec)]
    return NamedSharding(mesh, P(*spec))


def tree_shardings(mesh: Mesh, abstract_tree, logical_tree, rules=LOGICAL_AXIS_RULES):
    """Shardings for every leaf of `abstract_tree` (arrays or ShapeDtypeStructs) from a same-shaped tree of logical specs."""
    return jax.tree.map(lambda a, spec: named_sharding(mesh, a.shape, spec, rules), abstract_tree, logical_tree,
                        is_leaf=lambda x: isinstance(x, P))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def put_global(tree, shardings):
    """Host arrays (the same full value on every process) or jax.Arrays -> global jax.Arrays with `shardings`.

    Works across processes: each process materializes only its own devices' shards.
    """
    def put(x, sharding):
        if isinstance(x, jax.Array):
            if not x.is_fully_addressable or sharding.is_fully_addressable:
                return jax.device_put(x, sharding)
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # a process-local key -> a global one
                return jax.random.wrap_key_data(put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
    return jax.tree.map(put, tree, shardings)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules=LOGICAL_AXIS_RULES):
    """Context: `mesh` is the current mesh and `rules` translate logical constraints inside the model."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield mesh
