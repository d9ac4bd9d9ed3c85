"""Distillation data on disk: prompt lists as JSONL and answers as compressed shards of token ids.

A shard `shard-NNNNN.npz` holds the chat-formatted prompt ids and the target's answer ids of up to S
prompts (ragged arrays as flat ids + offsets, uint16 when the vocabulary fits) and each prompt's source.
Every file is written under a temporary name and renamed, so a stopped run never leaves a partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from pard_jax.errors import UserError

SOURCES = ("template", "self")


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    atomic_write(path, write)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pack_ids(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged token ids -> (flat ids, offsets [n+1]); uint16 when every id fits."""
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int64)
    dtype = np.uint16 if flat.size == 0 or flat.max() < 2 ** 16 else np.uint32
    offsets = np.zeros(len(seqs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    return flat.astype(dtype), offsets


def unpack_ids(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]].astype(np.int32) for i in range(len(offsets) - 1)]


def write_shard(path: Path, prompt_ids, response_ids, sources) -> None:
    p, po = pack_ids(prompt_ids)
    r, ro = pack_ids(response_ids)
    src = np.asarray([SOURCES.index(s) for s in sources], np.uint8)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, prompt_ids=p, prompt_offsets=po, response_ids=r, response_offsets=ro, source=src)
    atomic_write(path, write)


def read_shard(path: str | os.PathLike) -> list[dict]:
    """One record per example: {"prompt_ids": int32 [n], "response_ids": int32 [m], "source": str}."""
    try:
        with np.load(path) as z:
            prompts = unpack_ids(z["prompt_ids"], z["prompt_offsets"])
            responses = unpack_ids(z["response_ids"], z["response_offsets"])
            sources = [SOURCES[i] for i in z["source"]]
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise UserError(f"cannot read the distillation shard {path} ({e}); regenerate it or drop it from data.paths")
    return [{"prompt_ids": p, "response_ids": r, "source": s} for p, r, s in zip(prompts, responses, sources)]


def shard_summary(path: Path) -> dict:
    with np.load(path) as z:
        return {"prompts": int(len(z["prompt_offsets"]) - 1), "answer_tokens": int(z["response_offsets"][-1]),
                "sha256": sha256(path)}


def shard_prompts(path: str | os.PathLike) -> int:
    """How many prompts a shard answers."""
    with np.load(path) as z:
        return int(len(z["prompt_offsets"]) - 1)
