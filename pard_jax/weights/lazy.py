"""Arrays read on demand, part by part: a checkpoint's tensors (`Tensors`) and the params made of them (`Lazy`).

A `Lazy` is a shape and `read(index, dtype)`: the part `index` (one slice per axis) of an array that is never
assembled whole unless all of it is asked for. `weights.convert` makes one per param from a checkpoint's
tensors; a host loader reads each whole, the streaming loader has each device read its own shard.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable, Mapping, Protocol

import numpy as np

Index = tuple[slice, ...]


def whole(shape: tuple[int, ...]) -> Index:
    return (slice(None),) * len(shape)


def _sizes(shape: tuple[int, ...], index: Index) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(n))) for n, s in zip(shape, index))


# ----------------------------------------------------------------------------------------------- sources


class Tensors(Protocol):
    """Named tensors that can be read in parts: a checkpoint, or arrays already in memory."""

    def names(self) -> Iterable[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def read(self, name: str, index: Index) -> Any: ...


def read_slice(handle, name: str, index: Index) -> np.ndarray:
    """Part `index` of tensor `name` of an open safetensors file (numpy): only that part is read from disk."""
    return handle.get_slice(name)[index]


@dataclasses.dataclass(frozen=True, eq=False)
class Safetensors:
    """The tensors of open safetensors files, {tensor name: the file's handle}, read by `read_slice`."""

    handles: Mapping[str, Any]
    read_slice: Callable[[Any, str, Index], np.ndarray] = read_slice

    def names(self) -> Iterable[str]:
        return list(self.handles)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.handles[name].get_slice(name).get_shape())

    def read(self, name: str, index: Index) -> np.ndarray:
        return self.read_slice(self.handles[name], name, index)


@dataclasses.dataclass(frozen=True, eq=False)
class Whole:
    """Tensors of known shapes that `get(name)` returns whole (dequantized GGUF tensors, arrays in memory)."""

    shapes: Mapping[str, tuple[int, ...]]
    get: Callable[[str], Any]

    def names(self) -> Iterable[str]:
        return list(self.shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.shapes[name])

    def read(self, name: str, index: Index) -> Any:
        return self.get(name)[index]


def in_memory(arrays: Mapping[str, Any]) -> Whole:
    """{name: numpy array} as Tensors."""
    return Whole({k: tuple(a.shape) for k, a in arrays.items()}, arrays.__getitem__)


@dataclasses.dataclass(frozen=True, eq=False)
class Joined:
    """Several Tensors as one (a checkpoint's safetensors and a PARD-2 draft's warp_model.bin); the first part
    holding a name wins."""

    parts: tuple[Tensors, ...]

    def _part(self, name: str) -> Tensors:
        return next(p for p in self.parts if name in p.names())

    def names(self) -> Iterable[str]:
        return list(dict.fromkeys(n for p in self.parts for n in p.names()))

    def shape(self, name: str) -> tuple[int, ...]:
        return self._part(name).shape(name)

    def read(self, name: str, index: Index) -> Any:
        return self._part(name).read(name, index)


# ----------------------------------------------------------------------------------------------- lazy arrays


class Lazy(Protocol):
    """An array of `shape`, read part by part."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def read(self, index: Index, dtype) -> np.ndarray:
        """Part `index` of the array, in `dtype` (not necessarily contiguous)."""
        ...


@dataclasses.dataclass(frozen=True, eq=False)
class Tensor:
    tensors: Tensors
    name: str
    shape: tuple[int, ...]

    def read(self, index, dtype):
        return np.asarray(self.tensors.read(self.name, tuple(index))).astype(dtype, copy=False)


def tensor(tensors: Tensors, name: str) -> Tensor:
    return Tensor(tensors, name, tensors.shape(name))


def array(a, name: str = "array") -> Tensor:
    """An array in memory: numpy, or a jax.Array this process holds all of, copied to the host once, when first
    read (slicing a sharded jax.Array part by part costs a dispatch, and a compile, per part)."""
    host = functools.cache(lambda: np.asarray(a))
    return Tensor(Whole({name: tuple(a.shape)}, lambda _: host()), name, tuple(a.shape))


@dataclasses.dataclass(frozen=True, eq=False)
class Transposed:
    src: Lazy

    @property
    def shape(self):
        return self.src.shape[::-1]

    def read(self, index, dtype):
        return self.src.read(tuple(index)[::-1], dtype).T


def transposed(a: Lazy) -> Lazy:
    return a.src if isinstance(a, Transposed) else Transposed(a)


@dataclasses.dataclass(frozen=True, eq=False)
class Stack:
    """Arrays of one shape stacked on a new axis 0 (a scanned model's layers)."""

    members: tuple[Lazy, ...]

    @property
    def shape(self):
        return (len(self.members), *self.members[0].shape)

    def read(self, index, dtype):
        first, rest = index[0], tuple(index[1:])
        chosen = self.members[first]
        out = np.empty((len(chosen), *_sizes(self.shape[1:], rest)), dtype)
        for j, m in enumerate(chosen):
            out[j] = m.read(rest, dtype)
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    """Entry `i` along axis 0 of a stacked array."""

    src: Lazy
    i: int

    @property
    def shape(self):
        return self.src.shape[1:]

    def read(self, index, dtype):
        return self.src.read((slice(self.i, self.i + 1), *index), dtype)[0]


def layer(a: Lazy, i: int) -> Lazy:
    return a.members[i] if isinstance(a, Stack) else Layer(a, i)


def first_layers(a: Lazy, n: int) -> Stack:
    """The first `n` entries along axis 0 of a stacked array."""
    return Stack(tuple(layer(a, i) for i in range(n)))


@dataclasses.dataclass(frozen=True, eq=False)
class Rows:
    """Rows `ids` (increasing) of `src`, read run by run of consecutive ids."""

    src: Lazy
    ids: np.ndarray

    @property
    def shape(self):
        return (len(self.ids), *self.src.shape[1:])

    def read(self, index, dtype):
        ids, rest = self.ids[index[0]], tuple(index[1:])
        runs = np.split(ids, np.flatnonzero(np.diff(ids) != 1) + 1) if len(ids) else []
        parts = [self.src.read((slice(int(r[0]), int(r[-1]) + 1), *rest), dtype) for r in runs]
        return np.concatenate(parts) if parts else np.empty((0, *_sizes(self.shape[1:], rest)), dtype)


@dataclasses.dataclass(frozen=True, eq=False)
class Patched:
    """`src` with its rows `ids` replaced by `rows` (a compact draft's own rows over its target's table)."""

    src: Lazy
    ids: np.ndarray
    rows: np.ndarray

    @property
    def shape(self):
        return self.src.shape

    def read(self, index, dtype):
        out = np.array(self.src.read(index, dtype))  # a copy: the source may be another model's table
        at = np.full(self.shape[0], -1)
        at[np.arange(self.shape[0])[index[0]]] = np.arange(out.shape[0])
        mine = at[self.ids] >= 0
        out[at[self.ids][mine]] = self.rows[mine][(slice(None), *index[1:])]
        return out
