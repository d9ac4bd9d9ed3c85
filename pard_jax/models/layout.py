"""The two layouts of a decoder's parameters, and the conversions between them.

- `Layout.STACKED` (training): the layers' weights stacked under one `layers` entry ([L, ...] each), run by
  one `nn.scan`, so compile time does not grow with depth; projection kernels stored [in, out] (Flax's own).
- `Layout.PER_LAYER` (decoding): separate `layers_0` .. `layers_{L-1}`, run by a Python loop over per-layer
  weights and caches. Slicing a layer out of a stacked array inside the loop copies it (docs/kernels.md);
  separate buffers are read in place. Every projection kernel and an untied lm_head are
  stored [out, in] (HF's orientation), the one few-row products want (`layers.out_major_product`).
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp
from flax import traverse_util


class Layout(enum.Enum):
    STACKED = "stacked"
    PER_LAYER = "per_layer"

    @property
    def out_major(self) -> bool:
        """Whether projection kernels and an untied lm_head are stored [out, in]."""
        return self is Layout.PER_LAYER

    @classmethod
    def of(cls, params: dict) -> "Layout":
        return cls.STACKED if "layers" in params else cls.PER_LAYER


def is_stacked(params: dict) -> bool:
    return Layout.of(params) is Layout.STACKED


def out_major(path: str) -> bool:
    """Whether a param ("/"-joined path, either layout) is one the per-layer layout stores [out, in]: the
    projection kernels and an untied lm_head."""
    return path == "lm_head" or path.endswith("/kernel")


def _transpose_out_major(params: dict) -> dict:
    """Every `out_major` param transposed (both ways between the layouts' orientations)."""
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict({k: v.T if out_major(k) else v for k, v in flat.items()}, sep="/")


def unstack_layers(params: dict) -> dict:
    """STACKED -> PER_LAYER: stacked `layers` ([L, ...] leaves) -> separate `layers_0` .. `layers_{L-1}`, and
    the `out_major` params transposed to [out, in]. Each layer's arrays become buffers of their own (a one-time
    copy), which the decode step reads in place. PER_LAYER params are returned as they are."""
    if not is_stacked(params):
        return params
    stacked = params["layers"]
    num_layers = jax.tree.leaves(stacked)[0].shape[0]
    out = {k: v for k, v in params.items() if k != "layers"}
    for i in range(num_layers):
        out[f"layers_{i}"] = jax.tree.map(lambda a, i=i: a[i], stacked)
    return _transpose_out_major(out)


def stack_layers(params: dict) -> dict:
    """The inverse of `unstack_layers`."""
    if is_stacked(params):
        return params
    params = _transpose_out_major(params)
    names = sorted((k for k in params if k.startswith("layers_")), key=lambda k: int(k.split("_")[1]))
    out = {k: v for k, v in params.items() if not k.startswith("layers_")}
    out["layers"] = jax.tree.map(lambda *a: jnp.stack(a), *[params[n] for n in names])
    return out
