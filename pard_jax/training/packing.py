"""Pack examples' kept-token lists into fixed-length rows (static shapes for `jit`).

Each example becomes one segment of a row (segment ids 1, 2, ...; 0 is padding). Tokens of different
segments never attend to each other (`models.masks.pard_attention_mask`), so packing changes no result.
"""

from __future__ import annotations

import numpy as np

from pard_jax.errors import UserError

FIELDS = ("tokens", "positions", "blocks", "anchors", "labels")
ROW_FIELDS = FIELDS + ("segments",)
_PAD = {"tokens": 0, "positions": 0, "blocks": 0, "anchors": 0, "labels": -1, "segments": 0}


def first_fit_decreasing(sizes: list[int], row_length: int) -> list[list[int]]:
    """Assign item indices to rows of capacity `row_length`: largest first, each into the first row with room.

    Rows come out in the order they were opened; inside a row, items keep their input order.
    """
    if any(s > row_length for s in sizes):
        raise UserError(f"an example of {max(sizes)} kept tokens does not fit data.row_length={row_length}; "
                        "raise data.row_length or lower data.max_length")
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        for r, free in enumerate(room):
            if sizes[i] <= free:
                rows[r].append(i)
                room[r] -= sizes[i]
                break
        else:
            rows.append([i])
            room.append(row_length - sizes[i])
    return [sorted(r) for r in rows]


def pack_row(examples: list[dict[str, np.ndarray]], row_length: int) -> dict[str, np.ndarray]:
    """Concatenate examples into one row of `row_length` int32 tokens per field, plus `segments`; pad the rest."""
    row = {k: np.full(row_length, v, np.int32) for k, v in _PAD.items()}
    start = 0
    for seg, ex in enumerate(examples, start=1):
        n = ex["tokens"].shape[0]
        for k in FIELDS:
            row[k][start:start + n] = ex[k]
        row["segments"][start:start + n] = seg
        start += n
    return row


def pack(examples: list[dict[str, np.ndarray]], row_length: int) -> list[dict[str, np.ndarray]]:
    """Pack examples (dicts of [N_i] arrays, see `cod.kept_tokens`) into as few rows as first-fit-decreasing finds."""
    sizes = [ex["tokens"].shape[0] for ex in examples]
    return [pack_row([examples[i] for i in r], row_length) for r in first_fit_decreasing(sizes, row_length)]
