"""Distillation data for a PARD draft: the target's own greedy responses to our generated prompts.

    python train/make_distill_data.py --out data/distill/smollm2.jsonl [--num-prompts 600] \
        [--max-new-tokens 160] [--batch-size 16] [--target smollm2-135m-instruct] [--seed 0]

Writes one JSON object per line, {"prompt": ..., "response": ...}, in prompt order (the response is decoded with
skip_special_tokens=True). Prompts are batched in order of token length to keep padding small. The file is
written to a temporary name and renamed at the end, so a partial run never leaves a truncated file behind.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
if os.path.dirname(_HERE) not in sys.path:  # the repo root, for pard_jax when it is not installed
    sys.path.insert(0, os.path.dirname(_HERE))

from distill_prompts import prompts as make_prompts  # noqa: E402


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
    from tqdm import tqdm

    from pard_jax.inference import InferConfig, build
    from pard_jax.tokenizer import encode_prompt

    texts = make_prompts(args.num_prompts, seed=args.seed)
    session = build(InferConfig(target=args.target, mode="ar", max_new_tokens=args.max_new_tokens,
                                batch_size=args.batch_size))
    tok = session.tokenizer
    ids = [encode_prompt(tok, p) for p in texts]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = [order[s:s + args.batch_size] for s in range(0, len(order), args.batch_size)]

    responses: list[str | None] = [None] * len(texts)
    total_new = 0
    gen_seconds = 0.0
    t0 = time.perf_counter()
    bar = tqdm(batches, desc="generate", unit="batch", dynamic_ncols=True)
    for batch in bar:
        tb = time.perf_counter()
        results = session.generator.generate([ids[i] for i in batch])
        gen_seconds += time.perf_counter() - tb
        for i, r in zip(batch, results):
            responses[i] = tok.decode(r.token_ids, skip_special_tokens=True)
            total_new += len(r.token_ids)
        bar.set_postfix(tok_s=f"{total_new / max(gen_seconds, 1e-9):.1f}")
    bar.close()
    wall = time.perf_counter() - t0

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for p, r in zip(texts, responses):
            f.write(json.dumps({"prompt": p, "response": r}, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)

    prompt_tokens = sum(len(x) for x in ids)
    print(f"wrote {len(texts)} examples to {args.out}: {total_new} generated tokens ({prompt_tokens} prompt tokens) "
          f"in {wall:.1f}s, {total_new / max(wall, 1e-9):.1f} tokens/s overall "
          f"(batch size {args.batch_size}, max {args.max_new_tokens} new tokens)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
