"""The training data pipeline (grain): records (`training.records`), COD-sampled, packed into rows, batched.

Every step is deterministic given `data.seed`: the record order and each example's COD draw depend only
on the seed and the record's index, and the packer's state is (where its window started, rows emitted), so
the iterator state saved with a checkpoint restores the exact same stream. Each process reads only its
own shard of the records (`jax.process_index()` of `jax.process_count()`).
"""

from __future__ import annotations

import copy

import grain
import numpy as np

from pard_jax.errors import UserError
from pard_jax.training import cod, packing
from pard_jax.training.records import encode_record, read_records

class _PackedRowsIterator(grain.DatasetIterator):
    """Pulls `window` examples, packs them (first-fit decreasing), emits the rows, repeats.

    State = (the parent's state where the current window started, rows emitted from it): restoring
    re-pulls the same window (the parent is deterministic), re-packs it and skips the emitted rows.
    """

    def __init__(self, parent: grain.DatasetIterator, row_length: int, window: int, base_length: int | None):
        super().__init__(parent)
        self._row_length, self._window, self._base_length = row_length, window, base_length
        self._window_start = copy.deepcopy(parent.get_state())
        self._rows: list[dict] = []
        self._emitted = 0

    def _fill(self) -> None:
        for _ in range(100):
            self._window_start = copy.deepcopy(self._parent.get_state())
            examples = []
            for _ in range(self._window):
                try:
                    examples.append(next(self._parent))
                except StopIteration:
                    break
            if not examples:
                raise StopIteration
            examples = [e for e in examples if (e["labels"] >= 0).any()]
            self._rows, self._emitted = packing.pack(examples, self._row_length, self._base_length), 0
            if self._rows:
                return
        raise UserError("the training data has no tokens to learn (no assistant replies?); "
                        "check data.paths or set data.train_on_prompt=true")

    def __next__(self) -> dict[str, np.ndarray]:
        if self._emitted >= len(self._rows):
            self._fill()
        row = self._rows[self._emitted]
        self._emitted += 1
        return row

    def get_state(self) -> dict:
        return {"window_start": copy.deepcopy(self._window_start), "emitted": self._emitted}

    def set_state(self, state: dict) -> None:
        self._parent.set_state(copy.deepcopy(state["window_start"]))
        self._fill()
        self._emitted = int(state["emitted"])


class PackedRows(grain.IterDataset):
    """Examples (dicts of [N_i] arrays) -> packed rows (dicts of [row_length] int32 arrays, with `segments`);
    with `base_length`, at most that many block-0 tokens per row (PARD-2)."""

    def __init__(self, parent: grain.IterDataset, row_length: int, window: int, base_length: int | None = None):
        super().__init__(parent)
        self._row_length, self._window, self._base_length = row_length, window, base_length

    def __iter__(self) -> _PackedRowsIterator:
        return _PackedRowsIterator(self._parent.__iter__(), self._row_length, self._window, self._base_length)


# -------------------------------------------------------------------------------------------- pipeline

def example_dataset(records: list[dict], tok, *, k: int, r: float, r_min: float, mask_id: int,
                    max_length: int, chat_template: bool = True, train_on_prompt: bool = False, seed: int = 0,
                    process_index: int = 0, process_count: int = 1, epochs: int | None = None,
                    feature_dropout: float | None = None) -> grain.MapDataset:
    """This process's shard of the records, shuffled per epoch, tokenized and COD-sampled (`epochs=None`: endless).
    With `feature_dropout` (PARD-2) each example also gets `features`: all 0 for that fraction of them (they
    train without the target's features), else 1."""
    shard = grain.MapDataset.source(records)[process_index::process_count]
    if len(shard) == 0:
        raise UserError(f"process {process_index} of {process_count} gets no records from {len(records)}; "
                        "add training data or use fewer processes")
    ds = shard.shuffle(seed=seed).repeat(epochs)
    ds = ds.map(lambda rec: encode_record(rec, tok, chat_template=chat_template, train_on_prompt=train_on_prompt,
                                          max_length=max_length))
    def sample(ex, rng):
        out = cod.cod_example(ex["ids"], ex["targets"], k, r, r_min, mask_id, rng)
        if feature_dropout is not None:
            out["features"] = np.full_like(out["tokens"], int(rng.random() >= feature_dropout))
        return out

    return ds.random_map(sample, seed=seed + 1)


def row_dataset(examples: grain.MapDataset, *, row_length: int, rows_per_batch: int,
                pack_window: int = 64, base_length: int | None = None) -> grain.IterDataset:
    """Packed rows batched into dicts of [rows_per_batch, row_length] int32 arrays."""
    rows = PackedRows(examples.to_iter_dataset(), row_length, pack_window, base_length)
    return rows.batch(rows_per_batch, drop_remainder=True)


def check_row_length(cfg) -> int:
    """The most tokens one example keeps after COD; a UserError if a packed row cannot hold them."""
    budget = cod.token_budget(cfg.data.max_length, cfg.pard.k, cfg.pard.r, cfg.pard.r_min)
    if budget > cfg.data.row_length:
        raise UserError(f"data.row_length={cfg.data.row_length} cannot hold one example of data.max_length="
                        f"{cfg.data.max_length} tokens ({budget} tokens after COD); raise data.row_length to "
                        f"{budget} or more, or lower data.max_length")
    if cfg.pard2.target is not None and base_length(cfg) < cfg.data.max_length:
        raise UserError(f"pard2.base_length={base_length(cfg)} cannot hold one sequence of data.max_length="
                        f"{cfg.data.max_length} tokens; raise pard2.base_length or lower data.max_length")
    return budget


def base_length(cfg) -> int:
    """PARD-2: the block-0 tokens of a packed row the target runs on (`pard2.base_length`, default half a row)."""
    return cfg.pard2.base_length or cfg.data.row_length // 2


def train_batches(cfg, tok, *, process_index: int = 0, process_count: int = 1) -> grain.DatasetIterator:
    """The checkpointable iterator of this process's training batches for a `TrainConfig`.

    Each batch is a dict of int32 [train.batch_size / process_count, data.row_length] arrays.
    """
    check_row_length(cfg)
    pard2 = cfg.pard2.target is not None
    records = read_records(cfg.data.paths)
    examples = example_dataset(
        records, tok, k=cfg.pard.k, r=cfg.pard.r, r_min=cfg.pard.r_min,
        mask_id=cfg.pard.mask_token_id, max_length=cfg.data.max_length, chat_template=cfg.data.chat_template,
        train_on_prompt=cfg.data.train_on_prompt, seed=cfg.data.seed, process_index=process_index,
        process_count=process_count, feature_dropout=cfg.pard2.feature_dropout if pard2 else None)
    rows = row_dataset(examples, row_length=cfg.data.row_length,
                       rows_per_batch=cfg.train.batch_size // process_count, pack_window=cfg.data.pack_window,
                       base_length=base_length(cfg) if pard2 else None)
    return rows.__iter__()
