"""Deterministic generator of diverse English prompts for distilling a target model into a PARD draft.

Three families, written for this project (not taken from any benchmark):
  * code: "Complete the code I provided." stubs with >>> examples, and "Write a Python function ..." requests,
    over ~85 small list/string/dict/math tasks (the examples' outputs are computed from reference code);
  * math: grade-school word problems and simple algebra from ~30 templates with random names, items, numbers;
  * general: explanations, advice, lists and short writing from topic lists x instruction templates.

`prompts(n, seed)` returns n distinct prompts (a third of each family, shuffled together).
"""

from __future__ import annotations

import random
import sys

from pard_jax.distill.code_prompts import code_prompts
from pard_jax.distill.general_prompts import general_prompts
from pard_jax.distill.math_prompts import math_prompts


def _take(pool: list[str], k: int, seen: set[str]) -> list[str]:
    out = []
    for p in pool:
        if len(out) == k:
            break
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def prompts(n: int, seed: int = 0) -> list[str]:
    """n distinct prompts, about a third each of code, math and general instructions, deterministically shuffled."""
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = random.Random(seed)
    code = code_prompts(random.Random(rng.random()))
    general = general_prompts(random.Random(rng.random()))
    math_rng = random.Random(rng.random())
    k_code = min(len(code), n // 3)
    k_general = min(len(general), n // 3)
    seen: set[str] = set()
    out = _take(code, k_code, seen) + _take(general, k_general, seen)
    out += _take(math_prompts(math_rng, n - len(out)), n - len(out), seen)
    if len(out) < n:  # very large n: top up from whatever is left of the fixed pools, then more math
        out += _take(code + general, n - len(out), seen)
        extra = random.Random(seed + 1)
        while len(out) < n:
            before = len(out)
            out += _take(math_prompts(extra, n - len(out)), n - len(out), seen)
            if len(out) == before:
                raise ValueError(f"cannot make {n} distinct prompts")
    rng.shuffle(out)
    return out


if __name__ == "__main__":  # a preview: python -m pard_jax.distill.prompts [N]
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    ps = prompts(n)
    print(f"{len(ps)} prompts, {len(set(ps))} distinct")
    for p in ps[:8]:
        print("-" * 60)
        print(p)
