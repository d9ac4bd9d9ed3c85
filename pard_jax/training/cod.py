"""COD (conditional drop-token): which (block, position) pairs of one example are trained.

PARD trains k blocks per sequence of L tokens: block 0 is the sequence itself, and block j >= 1 holds mask
tokens whose token at position t predicts x_{t+1} from the real prefix up to its anchor t - j followed by j
mask tokens (the attention rule is `models.masks.pard_attention_mask`). Training all k·L tokens is k times
the work of plain training; COD keeps a shrinking random part of each mask block instead.

Block 0 is the sequence itself and is always kept whole. Block j >= 1 keeps a random
max(r**j, r_min) fraction of its positions, chosen only among positions t whose predecessor
(j-1, t-1) was kept, so every kept token still has every token it attends to (the chain property).
Block j's positions are t = j .. L-2: its token at t predicts x_{t+1} from the anchor t - j, so t < j has
no anchor and t = L-1 no target. With r = 1 all of them are kept (training without COD).
"""

from __future__ import annotations

import numpy as np

from pard_jax.errors import UserError


def validate_pard(k: int, r: float, r_min: float) -> None:
    """Raise a UserError for PARD settings outside their domain."""
    if k < 1:
        raise UserError(f"pard.k must be at least 1 (the number of predicted tokens), got {k}")
    if not 0.0 < r <= 1.0:
        raise UserError(f"pard.r must lie in (0, 1] (1 disables COD), got {r}")
    if not 0.0 < r_min <= 1.0:
        raise UserError(f"pard.r_min must lie in (0, 1], got {r_min}")


def block_fraction(j: int, r: float, r_min: float) -> float:
    """The fraction of its positions that block j keeps (1 for block 0)."""
    return 1.0 if j == 0 else max(r ** j, r_min)


def block_positions(length: int, j: int) -> int:
    """How many positions block j has for a sequence of `length` tokens: L, then L-1-j (t = j .. L-2)."""
    return length if j == 0 else max(length - 1 - j, 0)


def block_budget(length: int, j: int, r: float, r_min: float) -> int:
    """How many tokens block j aims to keep: max(r**j, r_min) of its positions, about that fraction of L."""
    return int(round(block_fraction(j, r, r_min) * block_positions(length, j)))


def token_budget(length: int, k: int, r: float, r_min: float) -> int:
    """An upper bound on the kept tokens of one example of `length` tokens (all k blocks)."""
    return sum(block_budget(length, j, r, r_min) for j in range(k))


def sample_kept(length: int, k: int, r: float, r_min: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Kept positions per block: a list of k sorted int32 arrays, block 0 = arange(length).

    Block j keeps min(round(max(r**j, r_min)·(L-1-j)), #candidates) positions, drawn uniformly without
    replacement from {t + 1 : t kept in block j-1, t + 1 <= L-2}. With r = 1 every candidate is kept.
    """
    kept = [np.arange(length, dtype=np.int32)]
    for j in range(1, k):
        candidates = kept[-1] + 1
        candidates = candidates[candidates <= length - 2]
        n = min(block_budget(length, j, r, r_min), candidates.size)
        if n < candidates.size:
            candidates = np.sort(rng.choice(candidates, size=n, replace=False))
        kept.append(candidates.astype(np.int32))
    return kept


def kept_tokens(ids: np.ndarray, targets: np.ndarray, kept: list[np.ndarray], mask_id: int) -> dict[str, np.ndarray]:
    """The kept tokens of one example as flat int32 arrays [N]: tokens, positions, blocks, anchors, labels.

    ids [L] are the sequence's token ids; targets [L] says which tokens are trained as predictions
    (e.g. only the assistant's). The token at (j, t) is x_t for j = 0 and `mask_id` otherwise; its
    anchor is t - j and its label is x_{t+1}, or -1 where there is none or it is not a target.
    """
    length = ids.shape[0]
    positions = np.concatenate(kept).astype(np.int32)
    blocks = np.concatenate([np.full(block.size, j, np.int32) for j, block in enumerate(kept)])
    tokens = np.where(blocks == 0, ids[positions], mask_id).astype(np.int32)
    nxt = np.minimum(positions + 1, length - 1)
    has_label = (positions + 1 < length) & targets[nxt]
    labels = np.where(has_label, ids[nxt], -1).astype(np.int32)
    return {"tokens": tokens, "positions": positions, "blocks": blocks, "anchors": positions - blocks,
            "labels": labels}


def cod_example(ids: np.ndarray, targets: np.ndarray, k: int, r: float, r_min: float, mask_id: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """COD-sample one tokenized example: its kept tokens (see `kept_tokens`)."""
    return kept_tokens(ids, targets, sample_kept(ids.shape[0], k, r, r_min, rng), mask_id)
