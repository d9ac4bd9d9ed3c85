"""A checkpoint's tensors placed straight into device shards.

Each param becomes a global jax.Array built by `jax.make_array_from_callback`: every addressable device reads
its own slice from disk (safetensors `get_slice`) and casts it, so no host or device ever holds a whole model,
and in a multi-process run each process reads only its own devices' slices. HF directories go through the
conversion table (`weights.convert`, as the host loader), compact drafts and sub-vocabulary heads included;
GGUF files through their converted-params cache (`weights.store`, built first when missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np
from flax import traverse_util
from safetensors import safe_open

from pard_jax.models.config import ModelConfig
from pard_jax.weights import convert, hf, lazy, sources, store
from pard_jax.weights.convert import Place
from pard_jax.weights.sources import LoadedModel
from pard_jax.weights.table import expected_shapes

ShardingOf = Callable[[str, tuple[int, ...]], jax.sharding.Sharding]

_read_slice = lazy.read_slice  # the only disk read (tests replace it to count what is read)


def on_devices(dtype, sharding_of: ShardingOf) -> Place:
    """Each param a global array of `sharding_of(path, shape)`, every device's shard read on its own."""
    np_dtype = np.dtype(dtype)

    def place(path: str, a: lazy.Lazy) -> jax.Array:
        return jax.make_array_from_callback(a.shape, sharding_of(path, a.shape),
                                            lambda index: np.ascontiguousarray(a.read(tuple(index), np_dtype)))
    return place


def _stream_hf_dir(directory: str, dtype, sharding_of: ShardingOf, num_layers: int | None,
                   shared_embed=None) -> tuple[ModelConfig, dict]:
    cfg = hf.read_hf_config(directory)
    tensors, close = hf.safetensors_tensors(directory, _read_slice, pard2=cfg.pard2 is not None)
    try:
        params = convert.hf_to_params(cfg, tensors, on_devices(dtype, sharding_of), stacked=False,
                                      num_layers=num_layers, shared_embed=shared_embed, source=directory)
    finally:
        close()
    return (cfg if num_layers is None else cfg.truncated(num_layers)), params


def _place_stacked(cfg: ModelConfig, tensors: lazy.Tensors, keep: int, place: Place) -> dict:
    """Params stored under their stacked param paths (all `cfg.num_layers` layers), the first `keep` of them
    placed in the per-layer layout."""
    flat = {path: lazy.tensor(tensors, path) for path in tensors.names()}
    flat = {p: lazy.first_layers(a, keep) if p.startswith("layers/") else a for p, a in flat.items()}
    return traverse_util.unflatten_dict({p: place(p, a) for p, a in convert.per_layer(flat).items()}, sep="/")


def _stream_cache(folder: Path, dtype, sharding_of: ShardingOf,
                  num_layers: int | None) -> tuple[ModelConfig, dict] | None:
    """A GGUF cache entry (`store.write_params`: stacked param paths) streamed; None when it holds no complete,
    readable entry that fits its config."""
    cfg = store.read_config(folder)
    if cfg is None:
        return None
    keep = cfg.num_layers if num_layers is None else num_layers
    cfg.truncated(keep)  # validates num_layers
    try:
        handle = safe_open(str(store.params_file(folder)), framework="numpy")
    except Exception:  # a damaged entry, as store.read_params
        return None
    try:
        tensors = lazy.Safetensors({k: handle for k in handle.keys()}, _read_slice)
        if {k: tensors.shape(k) for k in tensors.names()} != expected_shapes(cfg):
            return None
        params = _place_stacked(cfg, tensors, keep, on_devices(dtype, sharding_of))
    finally:
        if hasattr(handle, "__exit__"):
            handle.__exit__(None, None, None)
    return cfg.truncated(keep), params


def _stream_gguf(path: str, dtype, sharding_of: ShardingOf, num_layers: int | None) -> tuple[ModelConfig, dict]:
    """A GGUF file through its converted-params cache, converting it first (as `load_gguf`) when missing.

    A cache that cannot be written or read: the file is converted again and placed from host memory.
    """
    folder = store.gguf_cache_dir(path) / "params"
    if store.read_config(folder) is None:
        sources.convert_gguf(path, num_layers, folder)  # its host arrays are dropped: streamed from the cache
    out = _stream_cache(folder, dtype, sharding_of, num_layers)
    if out is None:
        cfg, flat = sources.convert_gguf(path, num_layers)
        keep = cfg.num_layers if num_layers is None else num_layers
        out = cfg.truncated(keep), _place_stacked(cfg, lazy.in_memory(flat), keep, on_devices(dtype, sharding_of))
    return out


def stream_model(spec: str, dtype, sharding_of: ShardingOf, num_layers: int | None = None,
                 shared_embed=None) -> LoadedModel:
    """Load SPEC's params as global jax.Arrays in the per-layer (decoding) layout (`layers_{i}/...`),
    each built with jax.make_array_from_callback(shape, sharding_of(path, shape), read) so that each
    device's shard is read from disk as a slice and cast to `dtype`.

    SPEC and `shared_embed` are what `load_model` takes (same tokenizer_source and spec; `shared_embed` may be
    a jax.Array this process can read); `path` is "/"-joined ("embed", "final_norm/scale", "lm_head",
    "layers_3/attn/q_proj/kernel"); `num_layers` keeps the first N layers.
    """
    spec = str(spec)
    where = sources.resolve(spec)
    if where.kind == "gguf":
        cfg, params = _stream_gguf(where.path, dtype, sharding_of, num_layers)
    else:
        cfg, params = _stream_hf_dir(where.path, dtype, sharding_of, num_layers, shared_embed)
    return LoadedModel(cfg=cfg, params=params, tokenizer_source=where.tokenizer_source, spec=spec)
