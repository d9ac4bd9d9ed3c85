"""Export a training checkpoint as an HF model directory that transformers loads and vLLM serves as a PARD draft.

    python train/export.py --checkpoint RUN_DIR [--step S] --out HF_DIR [--compact]

config.json carries "pard_token" (the mask id) and "spd_type": "pard"; the tokenizer files are saved too
(unless the run used the built-in byte tokenizer, or --compact: the target supplies them).
`infer/generate.py --draft HF_DIR` uses the result.
"""

from __future__ import annotations

import argparse
import logging

from pard_jax.cli import run_cli
from pard_jax.training.export import export_checkpoint


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a PARD training checkpoint as an HF model directory.")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR", help="the run_dir of a training run")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest complete one)")
    p.add_argument("--out", required=True, metavar="HF_DIR", help="output directory")
    p.add_argument("--compact", action="store_true",
                   help="bfloat16 without the embedding table or tokenizer files, to ship beside its target (which "
                        "supplies both); needs a run trained with model.freeze=[embed]")
    args = p.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notices are not for the person at the terminal

    def body():
        step = export_checkpoint(args.checkpoint, args.out, args.step, args.compact)
        print(f"exported step {step} of {args.checkpoint} to {args.out}")

    return run_cli(body)
