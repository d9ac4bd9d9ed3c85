"""The on-disk cache under `$PARD_JAX_CACHE` (default `~/.cache/pard_jax`).

Reading a GGUF file costs seconds (metadata parsing, dequantization, tokenizer conversion), so its converted
params (float32 safetensors + the config as HF config.json) and its converted tokenizer are kept in a folder
keyed by the file's path, size and mtime. Every folder is written whole or not at all (`atomic_write_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from pard_jax.models.config import ModelConfig

_CACHE_FORMAT = 3  # bump when what is cached (layout, conversion, config serialisation) changes
_PARAMS_FILE = "params.safetensors"
_CONFIG_FILE = "config.json"


def cache_root() -> Path:
    return Path(os.environ.get("PARD_JAX_CACHE") or Path.home() / ".cache" / "pard_jax")


def gguf_cache_dir(path: str) -> Path:
    """The cache folder of one GGUF file version: keyed by its real path, size and mtime."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{_CACHE_FORMAT}".encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(real).stem)[:64]
    return cache_root() / "gguf" / f"{stem}-{key}"


def atomic_write_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary folder next to `final` with `write(tmp)`, then rename it into place.

    Readers see either no folder or a complete one; when another process won the race, its copy is kept.
    A cache that cannot be written (read-only home, full disk) is skipped silently: it only costs speed.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError:
        return
    try:
        write(tmp)
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def params_file(folder: Path) -> Path:
    """The safetensors file of a cache folder: {param path: float32 array}, layers stacked on axis 0."""
    return folder / _PARAMS_FILE


def read_config(folder: Path) -> ModelConfig | None:
    """The full config of a cache folder with a params file, or None when it has no complete, readable entry."""
    if not params_file(folder).is_file():
        return None
    try:
        return ModelConfig.from_hf_dict(json.loads((folder / _CONFIG_FILE).read_text()))
    except Exception:  # a damaged cache entry (UserError included): the caller rebuilds it
        return None


def read_params(folder: Path, num_layers: int | None = None) -> tuple[ModelConfig, dict[str, np.ndarray]] | None:
    """(full config, {param path: array} with the first `num_layers` layers) from a cache folder, or None when
    it holds no complete, readable entry. A `num_layers` the model does not have is a UserError."""
    cfg = read_config(folder)
    if cfg is None:
        return None
    keep = cfg.num_layers if num_layers is None else num_layers
    cfg.truncated(keep)  # validates num_layers
    try:
        flat = {}
        with safe_open(str(params_file(folder)), framework="numpy") as f:
            for k in f.keys():
                flat[k] = f.get_slice(k)[:keep] if k.startswith("layers/") else f.get_tensor(k)
    except Exception:
        return None
    return cfg, flat


def write_params(folder: Path, cfg: ModelConfig, flat: dict[str, np.ndarray]) -> None:
    """Cache a model's config and its {param path: array} (all layers) in `folder`, atomically."""
    def write(tmp: Path):
        save_file(flat, str(tmp / _PARAMS_FILE), metadata={"format": "pard_jax"})
        (tmp / _CONFIG_FILE).write_text(json.dumps(cfg.to_hf_dict(), indent=1))

    atomic_write_dir(folder, write)
