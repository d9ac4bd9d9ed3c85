"""One distillation data folder, made in two resumable stages: prompts, then the target's answers.

A draft learns to predict its target's text, so its data is the target's own greedy answers. Prompts come
from the templates (`distill.prompts`: code, math, general) and from the target itself, Magpie-style: given
only the chat template's text up to where a user message begins (with a system message that steers the kind
of request), it samples the user message at temperature 1. Those are kept if complete and sensible
(`distill.filters`), deduplicated, and dropped if they share a word 8-gram with an excluded prompt set.

Folder layout (every file written atomically; rerunning the same command continues):
  prompts/FLAVOR-part-NNNNN.jsonl  raw self-written prompts, one file per sampled group
  prompts.jsonl                    the final prompt list (text, source), fixed once written
  shard-NNNNN.npz                  answers to prompts [N*S, (N+1)*S) as token ids (`distill.shards`)
  manifest.json                    the recipe, and each shard's prompt count, answer tokens and sha256
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable, Sequence

from pard_jax.distill import filters, shards
from pard_jax.errors import UserError
from pard_jax.weights.tokenizer import encode_prompt

# System messages that steer self-written prompts toward a kind of request (None: the template's default).
FLAVORS = {
    "general": None,
    "code": "You are an expert Python programmer. Users ask you to write, complete, explain or fix Python code.",
    "math": "You are a patient math tutor. Users ask you to solve math word problems and algebra questions.",
}


def user_turn_prefix(tokenizer, system: str | None = None) -> list[int]:
    """Token ids of the chat template up to where the user's message begins (system turn included)."""
    marker = "\u2063PARD\u2063"
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": marker}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if marker not in rendered:
        raise UserError("the tokenizer's chat template does not show the user message; self-written prompts "
                        "need a chat model (use --self-prompts 0)")
    return list(tokenizer(rendered[:rendered.index(marker)], add_special_tokens=False)["input_ids"])


class DistillRun:
    def __init__(self, out_dir: str, *, log: Callable[[str], None] = print):
        self.dir = Path(out_dir)
        (self.dir / "prompts").mkdir(parents=True, exist_ok=True)
        self.log = log

    # ---- stage 1: prompts
    def self_written(self, generator, tokenizer, count: int, *, flavor: str, group: int, seed: int) -> list[str]:
        """Self-written prompts of one flavor: sample groups of `group` (or read back saved ones) until `count`
        acceptable distinct ones are kept."""
        prefix = user_turn_prefix(tokenizer, FLAVORS[flavor])
        eos = set(generator.loop.eos_ids)
        kept: list[str] = []
        part = 0
        while True:
            path = self.dir / "prompts" / f"{flavor}-part-{part:05d}.jsonl"
            if path.exists():
                texts = [r["text"] for r in shards.read_jsonl(path)]
            elif len(kept) >= count:
                break
            else:
                t0 = time.perf_counter()
                results = generator.generate([prefix] * group, seed=seed + 1000 * list(FLAVORS).index(flavor) + part)
                texts = [tokenizer.decode(r.token_ids[:-1], skip_special_tokens=True).strip()
                         for r in results if r.token_ids and r.token_ids[-1] in eos]  # complete turns only
                shards.write_jsonl(path, ({"text": t} for t in texts))
                tokens = sum(r.num_generated for r in results)
                self.log(f"self-written {flavor} prompts, part {part}: {len(texts)}/{group} complete turns, "
                         f"{tokens / (time.perf_counter() - t0):.0f} tokens/s")
            kept = [t for t, _ in filters.dedupe((t, "self") for t in kept + texts if filters.acceptable_prompt(t))]
            part += 1
        return kept[:count]

    def finalize_prompts(self, items: list[tuple[str, str]], excluded: Sequence[str], seed: int) -> list[dict]:
        """Deduplicate, drop 8-gram overlaps with `excluded`, shuffle, and write prompts.jsonl once."""
        items = filters.dedupe(items)
        bad = filters.overlapping([t for t, _ in items], excluded) if excluded else [False] * len(items)
        items = [x for x, b in zip(items, bad) if not b]
        random.Random(seed).shuffle(items)
        rows = [{"text": t, "source": s} for t, s in items]
        shards.write_jsonl(self.dir / "prompts.jsonl", rows)
        self.log(f"prompts.jsonl: {len(rows)} prompts ({sum(bad)} dropped for sharing an 8-gram with the "
                 f"{len(excluded)} excluded prompts)")
        return rows

    def prompts(self) -> list[dict] | None:
        path = self.dir / "prompts.jsonl"
        return shards.read_jsonl(path) if path.exists() else None

    # ---- stage 2: answers
    def answer(self, generator, tokenizer, rows: list[dict], *, shard_size: int,
               progress: Callable[[int, int, int, float], None]) -> None:
        """Write every missing shard: the target's answers to its prompts, batched in order of length."""
        n_shards = -(-len(rows) // shard_size)
        for s in range(n_shards):
            path = self.dir / f"shard-{s:05d}.npz"
            if path.exists():
                continue
            part = rows[s * shard_size:(s + 1) * shard_size]
            ids = [encode_prompt(tokenizer, r["text"]) for r in part]
            order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
            t0 = time.perf_counter()
            results = generator.generate([ids[i] for i in order])
            answers: list[list[int]] = [[] for _ in part]
            for i, r in zip(order, results):
                answers[i] = r.token_ids
            shards.write_shard(path, ids, answers, [r["source"] for r in part])
            progress(s + 1, n_shards, sum(len(a) for a in answers), time.perf_counter() - t0)

    def write_manifest(self, recipe: dict | None = None) -> dict:
        path = self.dir / "manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else {}
        if recipe is not None:
            manifest["recipe"] = recipe
        manifest["shards"] = {p.name: shards.shard_summary(p) for p in sorted(self.dir.glob("shard-*.npz"))}
        manifest["total_prompts"] = sum(s["prompts"] for s in manifest["shards"].values())
        manifest["total_answer_tokens"] = sum(s["answer_tokens"] for s in manifest["shards"].values())
        shards.atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n"))
        return manifest
