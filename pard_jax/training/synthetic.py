"""A small synthetic chat dataset (JSONL) with patterns a tiny model learns in seconds.

    python -m pard_jax.training.synthetic --count 600 --seed 0 --out configs/train/data/smoke.jsonl

Records use the three input formats of the training pipeline: {"conversation": [...]} (most),
{"prompt", "response"} pairs and {"text"}. Replies are deterministic functions of the prompt (sums,
counting, spelling backwards, repeating), so predicting several tokens ahead is learnable: what a PARD
draft needs.
"""

from __future__ import annotations

import argparse
import json
import random

WORDS = ("apple river stone cloud garden window silver market forest candle yellow bridge pocket winter "
         "planet rabbit orange dragon pencil castle mirror summer engine violet harbor basket meadow rocket "
         "jacket thunder coffee island lemon shadow button valley spider tomato glacier puzzle").split()
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _task(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randrange(100), rng.randrange(100)
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    if kind == 1:
        a = rng.randrange(50)
        b = a + rng.randrange(3, 9)
        return f"Count from {a} to {b}.", ", ".join(str(i) for i in range(a, b + 1)) + "."
    if kind == 2:
        w = rng.choice(WORDS)
        return f"Spell {w} backwards.", f"{w} backwards is {w[::-1]}."
    if kind == 3:
        phrase = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 7)))
        return f"Repeat after me: {phrase}", f"{phrase}"
    i = rng.randrange(20)
    j = i + rng.randrange(3, 7)
    return f"List the letters from {LETTERS[i]} to {LETTERS[j]}.", " ".join(LETTERS[i:j + 1])


def record(rng: random.Random, max_turns: int = 2) -> dict:
    form = rng.random()
    if form < 0.8:
        turns = rng.randrange(1, max_turns + 1)
        return {"conversation": [dict(zip(("human", "assistant"), _task(rng))) for _ in range(turns)]}
    if form < 0.95:
        prompt, response = _task(rng)
        return {"prompt": prompt, "response": response}
    return {"text": " ".join(" ".join(_task(rng)) for _ in range(2))}


def write_jsonl(path: str, count: int, seed: int = 0, max_turns: int = 2) -> None:
    """`count` records from a generator seeded with `seed`, one JSON object per line."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(count):
            f.write(json.dumps(record(rng, max_turns)) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-turns", type=int, default=2, help="turns per conversation: 1 .. this")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    write_jsonl(args.out, args.count, args.seed, args.max_turns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
