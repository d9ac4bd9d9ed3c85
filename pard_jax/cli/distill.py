"""Distillation data for a PARD draft: the target's own greedy responses to our generated prompts.

    python train/make_distill_data.py --out data/distill/smollm2.jsonl [--num-prompts 600] \
        [--max-new-tokens 160] [--batch-size 16] [--target smollm2-135m-instruct] [--seed 0]

Writes one JSON object per line, {"prompt": ..., "response": ...}, in prompt order (the response is decoded with
skip_special_tokens=True). Prompts come from `pard_jax.distill.prompts` (code, math, general).
"""
from __future__ import annotations

import argparse

from pard_jax.cli import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output JSONL path")
    ap.add_argument("--num-prompts", type=int, default=600)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--target", default="smollm2-135m-instruct")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompt generator")
    a = ap.parse_args(argv)
    for name in ("num_prompts", "max_new_tokens", "batch_size"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)

    def body():
        from pard_jax.distill.data import respond, write_pairs
        from pard_jax.distill.prompts import prompts
        from pard_jax.speculative.config import InferConfig
        from pard_jax.speculative.setup import build

        texts = prompts(args.num_prompts, seed=args.seed)
        pipeline = build(InferConfig(target=args.target, mode="ar", max_new_tokens=args.max_new_tokens,
                                     batch_size=args.batch_size))
        responses, stats = respond(pipeline, texts, args.batch_size)
        write_pairs(args.out, texts, responses)
        new, wall = stats["generated_tokens"], stats["seconds"]
        print(f"wrote {len(texts)} examples to {args.out}: {new} generated tokens ({stats['prompt_tokens']} prompt "
              f"tokens) in {wall:.1f}s, {new / max(wall, 1e-9):.1f} tokens/s overall "
              f"(batch size {args.batch_size}, max {args.max_new_tokens} new tokens)", flush=True)

    return run_cli(body)
