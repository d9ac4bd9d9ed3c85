"""Distillation data for a PARD draft: the target's own greedy responses to the generated prompts."""

from __future__ import annotations

import json
import os
import time


def respond(pipeline, texts: list[str], batch_size: int, progress: bool = True) -> tuple[list[str], dict]:
    """The target's response to each prompt (decoded with skip_special_tokens=True), in prompt order, and
    statistics (generated and prompt tokens, seconds). Prompts are batched in order of token length to keep
    padding small."""
    from tqdm import tqdm

    from pard_jax.weights.tokenizer import encode_prompt

    tok, gen = pipeline.tokenizer, pipeline.generator
    ids = [encode_prompt(tok, p) for p in texts]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]

    responses: list[str | None] = [None] * len(texts)
    total_new = 0
    gen_seconds = 0.0
    t0 = time.perf_counter()
    bar = tqdm(batches, desc="generate", unit="batch", dynamic_ncols=True, disable=not progress)
    for batch in bar:
        tb = time.perf_counter()
        results = gen.generate([ids[i] for i in batch])
        gen_seconds += time.perf_counter() - tb
        for i, r in zip(batch, results):
            responses[i] = tok.decode(r.token_ids, skip_special_tokens=True)
            total_new += len(r.token_ids)
        bar.set_postfix(tok_s=f"{total_new / max(gen_seconds, 1e-9):.1f}")
    bar.close()
    stats = {"generated_tokens": total_new, "prompt_tokens": sum(len(x) for x in ids),
             "seconds": time.perf_counter() - t0}
    return responses, stats


def write_pairs(path: str, prompts: list[str], responses: list[str]) -> None:
    """One {"prompt": ..., "response": ...} JSON object per line, written to a temporary name and renamed at the
    end, so a partial run never leaves a truncated file behind."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for p, r in zip(prompts, responses):
            f.write(json.dumps({"prompt": p, "response": r}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
