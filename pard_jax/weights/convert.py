"""The one walk of the conversion table (`weights.table`): a checkpoint's HF-named tensors -> the params tree.

`hf_to_params` checks a checkpoint's tensors against its config and describes every param as a
`weights.lazy.Lazy`: which tensor, transposed or not, which rows, also for the params that come from more than
one place (a compact draft's embedding table: its target's, with rows of its own; a sub-vocabulary head: rows
of the output layer). Nothing is read until the caller's `place` reads it. The loaders differ only there:
`on_host` reads each param whole into a numpy array, `weights.stream` has each device read its own shard.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from flax import traverse_util

from pard_jax.errors import UserError
from pard_jax.models import layout
from pard_jax.models.config import ModelConfig
from pard_jax.weights import lazy, table
from pard_jax.weights.lazy import Lazy, Tensors
from pard_jax.weights.table import EMBED_ROW_IDS, EMBED_ROWS, SUB_HEAD

Place = Callable[[str, Lazy], Any]  # (param path, its lazy array) -> the array the params tree holds


def on_host(dtype) -> Place:
    """Each param read whole into a contiguous host numpy array in `dtype`."""
    np_dtype = np.dtype(dtype)
    return lambda path, a: np.ascontiguousarray(a.read(lazy.whole(a.shape), np_dtype))


def hf_to_params(cfg: ModelConfig, tensors: Tensors, place: Place, *, stacked: bool = True,
                 num_layers: int | None = None, shared_embed=None, source: str = "the checkpoint") -> dict:
    """The params tree of `cfg` kept to `num_layers` layers, each param `place(path, lazy array)`: in the stacked
    (training) layout, or with `stacked=False` in the per-layer (decoding) layout (`per_layer`).

    `cfg` describes the whole checkpoint; layers at or past `num_layers` are not read. A compact draft stores
    no embedding table: `shared_embed` (its target's [V, D] table: numpy, or a jax.Array this process holds all
    of) fills it when the checkpoint lacks one. Anything that does not fit the config is a UserError, before any
    param is read.
    """
    keep = cfg.num_layers if num_layers is None else num_layers
    flat = _walk(cfg, tensors, keep, shared_embed, source)
    if not stacked:
        flat = per_layer(flat)
    return traverse_util.unflatten_dict({path: place(path, a) for path, a in flat.items()}, sep="/")


def _walk(cfg: ModelConfig, tensors: Tensors, keep: int, shared_embed, source: str) -> dict[str, Lazy]:
    """{param path (stacked layout): its lazy array} of `cfg` kept to `keep` layers."""
    shapes = table.expected_shapes(cfg.truncated(keep))
    flat: dict[str, Lazy] = {}
    layers: dict[str, dict[int, Lazy]] = {}
    own: dict[str, Lazy] = {}  # a compact draft's own embedding rows and their ids
    head = None  # a sub-vocabulary draft's lm_head, of which draft_head is rows
    for name in tensors.names():
        if name in (EMBED_ROWS, EMBED_ROW_IDS):
            own[name] = lazy.tensor(tensors, name)
            continue
        hit = table.tensor_target(cfg, shapes, keep, name, source)
        if hit is None:
            continue
        rule, i = hit
        t = lazy.tensor(tensors, name)
        if rule.path not in shapes:
            head = t
            continue
        table.check_shape(rule, i, name, t.shape, shapes, source)
        a = lazy.transposed(t) if rule.transpose else t
        if i is None:
            flat[rule.path] = a
        else:
            layers.setdefault(rule.path, {})[i] = a
    if "embed" not in flat and shared_embed is not None:
        if tuple(shared_embed.shape) != shapes["embed"]:
            raise UserError(f"{source} has no embedding table and the target's {tuple(shared_embed.shape)} does "
                            f"not fit its config {shapes['embed']}; use the target it was trained with")
        flat["embed"] = lazy.array(shared_embed, "the target's embedding table")
    if own:
        flat["embed"] = _with_own_rows(flat.get("embed"), own, shapes["embed"], source)
    if cfg.draft_vocab is not None:
        ids = np.asarray(cfg.draft_vocab)
        if head is not None:
            flat["draft_head"] = _sub_head(head, ids, shapes["draft_head"], (cfg.vocab_size, cfg.hidden_size),
                                           source)
        elif "embed" in flat and cfg.tie_word_embeddings:
            flat["draft_head"] = lazy.Rows(flat["embed"], ids)
    table.check_complete(shapes, [*flat, *layers], {p: set(by) for p, by in layers.items()}, keep, source)
    flat.update({p: lazy.Stack(tuple(by[i] for i in range(keep))) for p, by in layers.items()})
    return flat


def _with_own_rows(embed: Lazy | None, own: dict[str, Lazy], shape: tuple[int, int], source: str) -> Lazy:
    """A compact draft's table: its target's `embed` with the draft's own rows (read here: a few)."""
    if set(own) != {EMBED_ROWS, EMBED_ROW_IDS} or embed is None:
        raise UserError(f"{source} has embedding rows of its own but no table to put them in (or lacks their "
                        "ids); load it as a draft with its target, or re-export it")
    ids = own[EMBED_ROW_IDS].read(lazy.whole(own[EMBED_ROW_IDS].shape), np.int64)
    rows = own[EMBED_ROWS].read(lazy.whole(own[EMBED_ROWS].shape), np.float32)
    if ids.ndim != 1 or rows.shape != (len(ids), shape[1]) or ids.min(initial=0) < 0 \
            or ids.max(initial=0) >= shape[0]:
        raise UserError(f"{source}: its own embedding rows {tuple(rows.shape)} / ids {tuple(ids.shape)} do not "
                        f"fit the table {shape}; re-export the draft")
    return lazy.Patched(embed, ids, rows)


def _sub_head(head: Lazy, ids: np.ndarray, shape: tuple[int, int], full: tuple[int, int], source: str) -> Lazy:
    """draft_head from a sub-vocabulary draft's lm_head: all of it when it has only those rows (a compact
    draft), else its rows `ids`."""
    if head.shape == shape:
        return head
    if head.shape != full:
        raise UserError(f"{source}: tensor {SUB_HEAD.hf!r} has shape {head.shape} but the config implies {full} "
                        f"(or {shape}, the sub-vocabulary's rows); check that config.json matches the weights")
    return lazy.Rows(head, ids)


def layer_path(path: str, i: int) -> str:
    """A stacked param path ("layers/attn/...") -> layer i's in the per-layer layout ("layers_3/attn/...")."""
    return f"layers_{i}/{path.removeprefix('layers/')}"


def per_layer(flat: dict[str, Lazy]) -> dict[str, Lazy]:
    """Lazy params of the stacked (training) layout in the per-layer (decoding) layout, as
    `layout.unstack_layers` converts arrays: layer i of `layers/...` becomes `layers_{i}/...`, and the
    `layout.out_major` params are transposed (to HF's own [out, in], which is then read as it is stored)."""
    out = {}
    for path, a in flat.items():
        parts = [(layer_path(path, i), lazy.layer(a, i)) for i in range(a.shape[0])] \
            if path.startswith("layers/") else [(path, a)]
        out.update({p: lazy.transposed(x) if layout.out_major(p) else x for p, x in parts})
    return out
