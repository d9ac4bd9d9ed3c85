"""Export a training checkpoint as an HF model directory that transformers loads and vLLM serves as a PARD draft.

    python train/export.py --checkpoint RUN_DIR [--step S] --out HF_DIR [--compact]

config.json carries "pard_token" (the mask id) and "spd_type": "pard"; the tokenizer files are saved too
(unless the run used the built-in byte tokenizer). `infer/generate.py --draft HF_DIR` uses the result.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax

from pard_jax.checkpoint import Checkpointer
from pard_jax.errors import UserError
from pard_jax.model import init_params
from pard_jax.model_config import ModelConfig


def export(run_dir: str, out_dir: str, step: int | None = None, compact: bool = False) -> int:
    """Write the params of checkpoint `step` (default: the latest complete one) to `out_dir`; returns the step."""
    from pard_jax.weights import export_hf

    ckpt = Checkpointer(run_dir, read_only=True)
    steps = ckpt.all_steps()
    if not steps:
        raise UserError(f"{run_dir!r} holds no complete checkpoint; train longer or pass another run_dir")
    if step is None:
        step = ckpt.latest_step()
    elif step not in steps:
        raise UserError(f"{run_dir!r} has no checkpoint for step {step}; available: {', '.join(map(str, steps))}")
    meta = ckpt.read_meta(step)
    if compact and "embed" not in meta.get("frozen", []):
        # A compact draft takes its target's table at load time: right only if training never moved it.
        raise UserError(f"--compact drops the embedding table, but step {step} of {run_dir!r} was not trained with "
                        "model.freeze=[embed], so its table may differ from the target's; export the full form, or "
                        "train with model.freeze=[embed]")
    cfg = ModelConfig.from_hf_dict(meta["model"])
    params = ckpt.restore_params(step, jax.eval_shape(lambda: init_params(cfg, jax.random.key(0))))
    ckpt.close()
    tokenizer = None
    if meta.get("tokenizer_source") not in (None, "bytes"):
        from pard_jax.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(meta["tokenizer_source"])
    export_hf(params, cfg, out_dir, tokenizer=tokenizer, compact=compact)
    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a PARD training checkpoint as an HF model directory.")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR", help="the run_dir of a training run")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest complete one)")
    p.add_argument("--out", required=True, metavar="HF_DIR", help="output directory")
    p.add_argument("--compact", action="store_true",
                   help="bfloat16 without the embedding table, to ship beside its target (which supplies the table); "
                        "needs a run trained with model.freeze=[embed]")
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notices are not for the person at the terminal
    try:
        step = export(args.checkpoint, args.out, args.step, args.compact)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported step {step} of {args.checkpoint} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
