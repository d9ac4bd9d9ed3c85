"""HF model directories: config.json (+ generation_config.json's EOS ids), safetensors weights (one file,
shards with an index, or loose shards), and snapshots of HF hub repositories."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import jax.numpy as jnp
from huggingface_hub import snapshot_download
from safetensors import safe_open

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.weights import lazy
from pard_jax.weights.convert import hf_to_params, on_host
from pard_jax.weights.torch_file import read_tensors

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_HUB_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "generation_config.json",
              "tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template*"]


WARP_MODEL = "warp_model.bin"  # a PARD-2 draft's target_proj (torch.save), beside its safetensors


def safetensors_tensors(directory: str, read_slice=lazy.read_slice,
                        pard2: bool = False) -> tuple[lazy.Tensors, Callable[[], None]]:
    """(tensors, close) of the safetensors of an HF directory (single file or sharded index), each part read
    from disk by `read_slice`; for a PARD-2 draft (`pard2`) with the target_proj tensors of its warp_model.bin."""
    handles, close = safetensors_handles(directory)
    tensors = lazy.Safetensors(handles, read_slice)
    if not pard2 or "target_proj.weight" in handles:
        return tensors, close
    warp = os.path.join(directory, WARP_MODEL)
    if not os.path.isfile(warp):
        close()
        raise UserError(f"{directory} is a PARD-2 draft (spd_type pard2) without its {WARP_MODEL} (the target_proj "
                        "weights); copy that file from the draft's checkpoint")
    return lazy.Joined((tensors, lazy.in_memory(read_tensors(warp)))), close


def safetensors_handles(directory: str) -> tuple[dict[str, Any], Callable[[], None]]:
    """({tensor name: the open safetensors file (numpy) holding it}, close) of an HF directory: one file, shards
    with an index, or loose shards."""
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(single):  # transformers' order: the single file wins over an index
        files, weight_map = ["model.safetensors"], None
    elif os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map: dict[str, str] = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"cannot read {index} ({e}); pass an intact model directory") from e
        files = sorted(set(weight_map.values()))
    else:
        others = sorted(p.name for p in Path(directory).glob("*.safetensors"))
        if not others:
            bins = [p.name for p in Path(directory).glob("*.bin")]
            hint = " (it has PyTorch .bin weights: re-save them with save_pretrained(safe_serialization=True))" \
                if bins else ""
            raise UserError(f"{directory} has no model.safetensors or model.safetensors.index.json{hint}; "
                            "pass a directory with safetensors weights")
        files, weight_map = others, None
    handles = {}
    try:
        for fn in files:
            handles[fn] = safe_open(os.path.join(directory, fn), framework="numpy")
    except Exception as e:
        raise UserError(f"cannot read the safetensors files in {directory} ({e}); pass an intact model directory") \
            from e
    if weight_map is None:
        weight_map = {k: fn for fn, h in handles.items() for k in h.keys()}

    def close():
        for h in handles.values():
            if hasattr(h, "__exit__"):
                h.__exit__(None, None, None)

    return {name: handles[fn] for name, fn in weight_map.items()}, close


def _with_generation_eos(directory: str, eos: tuple[int, ...]) -> tuple[int, ...]:
    """config.json's eos ids plus generation_config.json's (chat models often list their end-of-turn there)."""
    try:
        with open(os.path.join(directory, "generation_config.json")) as f:
            extra = json.load(f).get("eos_token_id")
    except (OSError, ValueError):
        return eos
    extra = extra if isinstance(extra, list) else ([] if extra is None else [extra])
    return tuple(dict.fromkeys([*eos, *(int(e) for e in extra)]))


def read_hf_config(directory: str) -> ModelConfig:
    """The ModelConfig of an HF directory: its config.json, with generation_config.json's EOS ids added."""
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise UserError(f"{directory} has no config.json; pass an HF model directory (config.json + "
                        "model.safetensors) or a .gguf file")
    try:
        with open(config_path) as f:
            hf_cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {config_path} ({e}); pass a directory with a valid config.json") from e
    cfg = ModelConfig.from_hf_dict(hf_cfg)
    return dataclasses.replace(cfg, eos_token_ids=_with_generation_eos(directory, cfg.eos_token_ids))


def read_hf_dir(directory: str, dtype=jnp.float32, num_layers: int | None = None,
                shared_embed=None) -> tuple[ModelConfig, dict]:
    """(config, host params: numpy arrays in `dtype`) of an HF directory, keeping its first `num_layers` layers."""
    cfg = read_hf_config(directory)
    tensors, close = safetensors_tensors(directory, pard2=cfg.pard2 is not None)
    try:
        params = hf_to_params(cfg, tensors, on_host(dtype), num_layers=num_layers, shared_embed=shared_embed,
                              source=directory)
    finally:
        close()
    if num_layers is not None:
        cfg = cfg.truncated(num_layers)
    return cfg, params


def is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.fullmatch(spec)) and not spec.startswith((".", "~"))


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_hub(repo_id: str) -> str:
    """A local snapshot of an HF hub repository (the cached one when offline)."""
    try:
        return snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=_hub_offline())
    except Exception as e:  # offline, not found, gated, network: all mean "no local copy for you"
        why = "offline (HF_HUB_OFFLINE is set) and not in the local HF cache" if _hub_offline() \
            else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"cannot get {repo_id!r} from the Hugging Face Hub ({why}); pass a local model directory "
                        "(config.json + model.safetensors) or a .gguf file instead") from e
