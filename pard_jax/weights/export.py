"""Writing params out as an HF model directory (the full form transformers loads, or a compact draft)."""

from __future__ import annotations

import json
import os

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.weights.table import params_to_hf


def export_hf(params, cfg: ModelConfig, out_dir: str, tokenizer=None, compact: bool = False) -> None:
    """Write model.safetensors + config.json (+ tokenizer files) that transformers loads with the same logits.

    `compact` writes a draft for shipping beside its target: bfloat16 weights and no embedding table (the
    target's is used at load time; requires tied embeddings). transformers cannot load that form.
    """
    from safetensors.numpy import save_file

    tensors = params_to_hf(params, cfg)
    untied = cfg.tie_word_embeddings and "lm_head.weight" in tensors  # a trained sub-vocabulary head
    if compact:
        if not cfg.tie_word_embeddings or untied:
            raise UserError("a compact export drops the embedding table, which needs tied embeddings; "
                            "export the full form instead")
        import ml_dtypes

        tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items() if k != "model.embed_tokens.weight"}
    hf_cfg = cfg.to_hf_dict()
    if untied:
        hf_cfg["tie_word_embeddings"] = False
    dtypes = {str(a.dtype) for a in tensors.values()}
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
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
