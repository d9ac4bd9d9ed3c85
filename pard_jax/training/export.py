"""A training checkpoint as an HF model directory (config.json with "pard_token" and "spd_type": "pard")."""

from __future__ import annotations

import jax

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import init_params
from pard_jax.training.checkpoint import Checkpointer
from pard_jax.training.config import BYTE_TOKENIZER
from pard_jax.weights.export import export_hf
from pard_jax.weights.tokenizer import load_tokenizer


def export_checkpoint(run_dir: str, out_dir: str, step: int | None = None, compact: bool = False) -> int:
    """Write the params of checkpoint `step` (default: the latest complete one) to `out_dir`; returns the step.

    The tokenizer files are saved too, unless the run used the built-in byte tokenizer. `compact` writes
    bfloat16 weights without the embedding table but for the rows the run trained (`weights.export.export_hf`),
    which is only right when the run kept the rest of the table frozen, and no tokenizer files: a compact draft
    ships beside its target, which supplies both.
    """
    cfg, params, meta, step = load_checkpoint(run_dir, step)
    if compact and "embed" not in meta.get("frozen", []):
        # A compact draft takes its target's table at load time: right only if training never moved it.
        raise UserError(f"--compact drops the embedding table, but step {step} of {run_dir!r} was not trained with "
                        "model.freeze=[embed], so its table may differ from the target's; export the full form, or "
                        "train with model.freeze=[embed]")
    tokenizer = None
    if not compact and meta.get("tokenizer_source") not in (None, BYTE_TOKENIZER):
        tokenizer = load_tokenizer(meta["tokenizer_source"])
    export_hf(params, cfg, out_dir, tokenizer=tokenizer, compact=compact,
              embed_rows=meta.get("train_embed_rows", []))
    return step


def load_checkpoint(run_dir: str, step: int | None = None) -> tuple[ModelConfig, dict, dict, int]:
    """(model config, params in the training layout, checkpoint meta, step) of checkpoint `step` of a run
    (default: the latest complete one)."""
    ckpt = Checkpointer(run_dir, read_only=True)
    steps = ckpt.all_steps()
    if not steps:
        raise UserError(f"{run_dir!r} holds no complete checkpoint; train longer or pass another run_dir")
    if step is None:
        step = ckpt.latest_step()
    elif step not in steps:
        raise UserError(f"{run_dir!r} has no checkpoint for step {step}; available: {', '.join(map(str, steps))}")
    meta = ckpt.read_meta(step)
    cfg = ModelConfig.from_hf_dict(meta["model"])
    params = ckpt.restore_params(step, jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))))
    ckpt.close()
    return cfg, params, meta, step
