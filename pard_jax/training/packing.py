"""Pack examples' kept-token lists into fixed-length rows (static shapes for `jit`).

Each example becomes one segment of a row (segment ids 1, 2, ...; 0 is padding). Tokens of different
segments never attend to each other (`models.masks.pard_attention_mask`), so packing changes no result.
"""

from __future__ import annotations

import numpy as np

from pard_jax.errors import UserError

FIELDS = ("tokens", "positions", "blocks", "anchors", "labels")
ROW_FIELDS = FIELDS + ("segments",)
# `features` (PARD-2, optional): 1 where the example's tokens read the target's features, 0 where they are dropped
_PAD = {"tokens": 0, "positions": 0, "blocks": 0, "anchors": 0, "labels": -1, "segments": 0, "features": 0}


def first_fit_decreasing(sizes: list[int], row_length: int, bases: list[int] | None = None,
                         base_length: int | None = None) -> list[list[int]]:
    """Assign item indices to rows of capacity `row_length`: largest first, each into the first row with room.

    With `bases` / `base_length` a row also holds at most `base_length` of the items' `bases` (PARD-2: the
    block-0 tokens the target runs on). Rows come out in the order they were opened; inside a row, items keep
    their input order.
    """
    if any(s > row_length for s in sizes):
        raise UserError(f"an example of {max(sizes)} kept tokens does not fit data.row_length={row_length}; "
                        "raise data.row_length or lower data.max_length")
    if bases is None or base_length is None:
        bases, base_length = [0] * len(sizes), 0
    elif any(b > base_length for b in bases):
        raise UserError(f"an example of {max(bases)} tokens does not fit pard2.base_length={base_length}; raise "
                        "pard2.base_length or lower data.max_length")
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        for r, (free, base_free) in enumerate(room):
            if sizes[i] <= free and bases[i] <= base_free:
                rows[r].append(i)
                room[r] = (free - sizes[i], base_free - bases[i])
                break
        else:
            rows.append([i])
            room.append((row_length - sizes[i], base_length - bases[i]))
    return [sorted(r) for r in rows]


def pack_row(examples: list[dict[str, np.ndarray]], row_length: int) -> dict[str, np.ndarray]:
    """Concatenate examples into one row of `row_length` int32 tokens per field, plus `segments`; pad the rest."""
    fields = [k for k in examples[0] if k in _PAD]
    row = {k: np.full(row_length, _PAD[k], np.int32) for k in [*fields, "segments"]}
    start = 0
    for seg, ex in enumerate(examples, start=1):
        n = ex["tokens"].shape[0]
        for k in fields:
            row[k][start:start + n] = ex[k]
        row["segments"][start:start + n] = seg
        start += n
    return row


def pack(examples: list[dict[str, np.ndarray]], row_length: int,
         base_length: int | None = None) -> list[dict[str, np.ndarray]]:
    """Pack examples (dicts of [N_i] arrays, see `cod.kept_tokens`) into as few rows as first-fit-decreasing finds
    (with `base_length`: at most that many block-0 tokens per row)."""
    sizes = [ex["tokens"].shape[0] for ex in examples]
    bases = [int(np.sum(ex["blocks"] == 0)) for ex in examples]
    return [pack_row([examples[i] for i in r], row_length)
            for r in first_fit_decreasing(sizes, row_length, bases, base_length)]
