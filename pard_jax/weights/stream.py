"""A checkpoint's tensors placed straight into device shards.

Each param becomes a global jax.Array built by `jax.make_array_from_callback`: every addressable device reads
its own slice from disk (safetensors `get_slice`) and casts it, so no host or device ever holds a whole model,
and in a multi-process run each process reads only its own devices' slices. Sources: HF safetensors directories
and the GGUF cache (`weights.store`, built first when missing). What needs whole tensors to assemble (a compact
draft's embedding table or own rows, a sub-vocabulary head) is not streamed: `stream_model` returns None and the
caller uses `load_model`.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import traverse_util

from pard_jax.models.config import ModelConfig
from pard_jax.models.layout import out_major
from pard_jax.weights import hf, sources, store, table
from pard_jax.weights.sources import LoadedModel
from pard_jax.weights.table import EMBED_ROW_IDS, EMBED_ROWS, expected_shapes

ShardingOf = Callable[[str, tuple[int, ...]], jax.sharding.Sharding]
_EMBED = "model.embed_tokens.weight"


@dataclasses.dataclass(frozen=True)
class _Tensor:
    """One param (per-layer layout) on disk: tensor `key` of the open safetensors file `handle`, or its `layer`
    of a stacked [L, ...] tensor; with `transpose`, the param is that tensor transposed (a training-layout
    [in, out] kernel of the decoding layout's [out, in] one)."""

    handle: Any
    key: str
    shape: tuple[int, ...]  # the param's
    layer: int | None = None
    transpose: bool = False


def _read_slice(handle, key: str, index: tuple) -> np.ndarray:
    """The only disk read: `index` of tensor `key` (tests wrap this to count what is read)."""
    return handle.get_slice(key)[index]


def _read(t: _Tensor, dtype: np.dtype, index: tuple) -> np.ndarray:
    """A device's slice `index` of param `t`, contiguous in `dtype`."""
    index = tuple(index)[::-1] if t.transpose else tuple(index)  # a transposed param's slice, reversed
    a = _read_slice(t.handle, t.key, index if t.layer is None else (t.layer, *index))
    return np.ascontiguousarray(a.T if t.transpose else a, dtype=dtype)


def _place(tensors: dict[str, _Tensor], dtype, sharding_of: ShardingOf) -> dict:
    """The params tree of global arrays, each device's shard read from disk by its own callback."""
    np_dtype = np.dtype(dtype)
    flat = {path: jax.make_array_from_callback(t.shape, sharding_of(path, t.shape),
                                               functools.partial(_read, t, np_dtype))
            for path, t in tensors.items()}
    return traverse_util.unflatten_dict(flat, sep="/")


def _layer_path(path: str, i: int) -> str:
    """A stacked param path ("layers/attn/...") -> layer i's in the decoding layout ("layers_3/attn/...")."""
    return f"layers_{i}/{path.removeprefix('layers/')}"


def _stream_hf_dir(directory: str, dtype, sharding_of: ShardingOf,
                   num_layers: int | None) -> tuple[ModelConfig, dict] | None:
    """An HF directory streamed, validated as `table.hf_to_params` validates; None for what it cannot stream."""
    cfg = hf.read_hf_config(directory)
    keep = cfg.num_layers if num_layers is None else num_layers
    shapes = expected_shapes(cfg.truncated(keep))
    if cfg.draft_vocab is not None:  # draft_head is gathered from whole-vocabulary rows
        return None
    handles, close = hf.safetensors_handles(directory)
    try:
        if EMBED_ROWS in handles or EMBED_ROW_IDS in handles or _EMBED not in handles:
            return None  # a compact draft: its table is (partly) its target's
        tensors: dict[str, _Tensor] = {}
        have, filled = set(), {}
        for name, handle in handles.items():
            hit = table.tensor_target(cfg, shapes, keep, name, directory)
            if hit is None:
                continue
            rule, i = hit
            hf_shape = tuple(handle.get_slice(name).get_shape())
            table.check_shape(rule, i, name, hf_shape, shapes, directory)
            have.add(rule.path)
            if i is not None:
                filled.setdefault(rule.path, set()).add(i)
            path = rule.path if i is None else _layer_path(rule.path, i)
            tensors[path] = _Tensor(handle, name, hf_shape)  # the decoding layout's kernels are HF's [out, in]
        table.check_complete(shapes, have, filled, keep, directory)
        params = _place(tensors, dtype, sharding_of)
    finally:
        close()
    return cfg.truncated(keep), params


def _stream_cache(folder: Path, dtype, sharding_of: ShardingOf,
                  num_layers: int | None) -> tuple[ModelConfig, dict] | None:
    """A GGUF cache entry (`store.write_params`: stacked param paths) streamed; None when it holds no complete,
    readable entry that fits its config (the caller rebuilds or loads it)."""
    from safetensors import safe_open

    cfg = store.read_config(folder)
    if cfg is None or cfg.draft_vocab is not None:
        return None
    keep = cfg.num_layers if num_layers is None else num_layers
    cfg.truncated(keep)  # validates num_layers
    shapes = expected_shapes(cfg)
    try:
        handle = safe_open(str(store.params_file(folder)), framework="numpy")
    except Exception:  # a damaged entry, as store.read_params
        return None
    try:
        found = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        if found != shapes:
            return None
        tensors = {}
        for path, shape in shapes.items():  # stacked, training layout: `out_major` kernels are transposed
            flip = out_major(path)
            if path.startswith("layers/"):
                shape = shape[1:][::-1] if flip else shape[1:]
                tensors.update({_layer_path(path, i): _Tensor(handle, path, shape, layer=i, transpose=flip)
                                for i in range(keep)})
            else:
                tensors[path] = _Tensor(handle, path, shape[::-1] if flip else shape, transpose=flip)
        params = _place(tensors, dtype, sharding_of)
    finally:
        if hasattr(handle, "__exit__"):
            handle.__exit__(None, None, None)
    return cfg.truncated(keep), params


def _stream_gguf(path: str, dtype, sharding_of: ShardingOf,
                 num_layers: int | None) -> tuple[ModelConfig, dict] | None:
    """A GGUF file through its converted-params cache, converting it first (as `load_gguf`) when missing.

    An unwritable cache gives None: the caller's `load_model` converts the file again (seconds, not memory).
    """
    folder = store.gguf_cache_dir(path) / "params"
    if store.read_config(folder) is None:
        sources.convert_gguf(path, num_layers, folder)  # its host arrays are dropped: streamed from the cache
    return _stream_cache(folder, dtype, sharding_of, num_layers)


def stream_model(spec: str, dtype, sharding_of: ShardingOf, num_layers: int | None = None) -> LoadedModel | None:
    """Load SPEC's params as global jax.Arrays in the per-layer (decoding) layout (`layers_{i}/...`),
    each built with jax.make_array_from_callback(shape, sharding_of(path, shape), read) so that each
    device's shard is read from disk as a slice and cast to `dtype`. Returns None when this checkpoint
    cannot be streamed (the caller then uses load_model and device_put).

    SPEC is what `load_model` takes (same tokenizer_source and spec); `path` is "/"-joined ("embed",
    "final_norm/scale", "lm_head", "layers_3/attn/q_proj/kernel"); `num_layers` keeps the first N layers.
    Not streamed: configs with `draft_vocab`, compact drafts (no embedding table, or their own rows).
    """
    spec = str(spec)
    where = sources.resolve(spec)
    stream = _stream_gguf if where.kind == "gguf" else _stream_hf_dir
    out = stream(where.path, dtype, sharding_of, num_layers)
    if out is None:
        return None
    cfg, params = out
    return LoadedModel(cfg=cfg, params=params, tokenizer_source=where.tokenizer_source, spec=spec)
