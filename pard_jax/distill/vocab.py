"""The draft's sub-vocabulary (FR-Spec): the N target tokens the draft may propose.

A draft's output layer over the whole vocabulary (49152 x 576 for SmolLM2) is most of a small draft's cost.
Restricting the draft to the N ids its target actually writes most often keeps nearly all of the acceptance
and shrinks that layer to N rows; the target still verifies over its whole vocabulary, so the output is
unchanged (see `pard_jax.speculative.steps`). The ids are chosen by frequency in the distillation data
(the target's own answers: `training.records.trained_ids`) and recorded in the draft's config.json (`draft_vocab`).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from pard_jax.errors import UserError


def token_counts(sequences: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """How often each id occurs in `sequences` (e.g. the target's answers): int64 [vocab_size]."""
    counts = np.zeros(vocab_size, np.int64)
    for s in sequences:
        counts += np.bincount(np.asarray(s, np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def frequent_ids(counts: np.ndarray, n: int, always: Iterable[int] = ()) -> np.ndarray:
    """The `n` ids to keep, sorted: every id in `always` (e.g. EOS), then the most frequent (ties: lower id)."""
    always = sorted(set(int(i) for i in always))
    if not 0 < n <= counts.shape[0] or len(always) > n:
        raise UserError(f"a sub-vocabulary of {n} ids must lie between {max(len(always), 1)} and "
                        f"{counts.shape[0]}; choose another --size")
    order = np.lexsort((np.arange(counts.shape[0]), -counts))  # by count descending, then id
    chosen = set(always)
    for i in order:
        if len(chosen) == n:
            break
        chosen.add(int(i))
    return np.asarray(sorted(chosen), np.int32)


def coverage(counts: np.ndarray, ids: np.ndarray) -> float:
    """The fraction of the tokens counted in `counts` whose id is in `ids`."""
    return float(counts[ids].sum() / max(counts.sum(), 1))
