"""Writing params out as an HF model directory (the full form transformers loads, or a compact draft)."""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.weights.hf import WARP_MODEL
from pard_jax.weights.table import EMBED_ROW_IDS, EMBED_ROWS, params_to_hf
from pard_jax.weights.torch_file import write_tensors


def export_hf(params, cfg: ModelConfig, out_dir: str, tokenizer=None, compact: bool = False,
              embed_rows: Sequence[int] = ()) -> None:
    """Write model.safetensors + config.json (+ tokenizer files) that transformers loads with the same logits
    (and a PARD-2 draft's target_proj as warp_model.bin, as the official PARD-2 code reads it).

    `compact` writes a draft for shipping beside its target: bfloat16 weights and, of the embedding table, only
    the rows `embed_rows` (where the draft's table differs from its target's, e.g. a learned mask token); the
    rest is the target's at load time (so the output layer must be the table, tied, or a sub-vocabulary head). A
    trained sub-vocabulary head goes out as an lm_head of only its N rows. transformers cannot load that form; the
    full form is an ordinary HF model.
    """
    tensors = params_to_hf(params, cfg)
    warp = {k: tensors.pop(k) for k in ("target_proj.weight", "target_proj.bias") if k in tensors}
    sub_head = cfg.draft_vocab is not None and "lm_head.weight" in tensors  # a trained sub-vocabulary head
    if compact:
        if not cfg.tie_word_embeddings and cfg.draft_vocab is None:
            raise UserError("a compact export drops the embedding table, which needs tied embeddings or a "
                            "sub-vocabulary head; export the full form instead")
        table = tensors.pop("model.embed_tokens.weight")
        if sub_head:
            tensors["lm_head.weight"] = tensors["lm_head.weight"][np.asarray(cfg.draft_vocab)]
        tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items()}
        warp = {k: v.astype(ml_dtypes.bfloat16) for k, v in warp.items()}
        if len(embed_rows):
            rows = np.asarray(sorted(set(int(i) for i in embed_rows)), np.int64)
            tensors[EMBED_ROWS] = table[rows].astype(ml_dtypes.bfloat16)
            tensors[EMBED_ROW_IDS] = rows
    hf_cfg = cfg.to_hf_dict()
    if sub_head:
        hf_cfg["tie_word_embeddings"] = False
    dtypes = {str(a.dtype) for k, a in tensors.items() if k != EMBED_ROW_IDS}
    if len(dtypes) == 1:
        name = dtypes.pop()
        hf_cfg["torch_dtype"] = name
        hf_cfg["dtype"] = name
    os.makedirs(out_dir, exist_ok=True)
    stale_index = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(stale_index):  # left by an earlier sharded save: it would point readers at stale shards
        os.remove(stale_index)
    tmp = os.path.join(out_dir, ".model.safetensors.tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    if warp:  # a PARD-2 draft: target_proj in warp_model.bin, the layout the official pard2_infer.py loads
        write_tensors(os.path.join(out_dir, WARP_MODEL), warp)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(config_json(hf_cfg))
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)


def config_json(hf_cfg: dict) -> str:
    """config.json text: indented, except that a list of numbers (a sub-vocabulary's thousands of ids) stays
    on one line."""
    numbers = {k: v for k, v in hf_cfg.items() if isinstance(v, list) and all(isinstance(x, int) for x in v)}
    text = json.dumps({k: (f"@{k}@" if k in numbers else v) for k, v in hf_cfg.items()}, indent=2)
    for k, v in numbers.items():
        text = text.replace(f'"@{k}@"', json.dumps(v, separators=(",", ":")))
    return text + "\n"
