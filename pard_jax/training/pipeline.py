"""The training data pipeline (grain): read files, tokenize, COD-sample, pack into rows, batch.

Every step is deterministic given `data.seed`: the record order and each example's COD draw depend only
on the seed and the record's index, and the packer's state is (where its window started, rows emitted), so
the iterator state saved with a checkpoint restores the exact same stream. Each process reads only its
own shard of the records (`jax.process_index()` of `jax.process_count()`).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Iterable

import grain
import numpy as np

from pard_jax import cod, packing
from pard_jax.errors import UserError

Turns = list[tuple[str, str]]


# ----------------------------------------------------------------------------------------------- reading

def _normalize(obj: Any, where: str) -> dict:
    """One record as {"turns": [(human, assistant), ...]} or {"text": str}."""
    if isinstance(obj, dict) and isinstance(obj.get("conversation"), list):
        turns = []
        for turn in obj["conversation"]:
            if not isinstance(turn, dict) or "human" not in turn or "assistant" not in turn:
                raise UserError(f"{where}: each conversation turn needs 'human' and 'assistant' strings")
            turns.append((str(turn["human"]), str(turn["assistant"])))
        return {"turns": turns}
    if isinstance(obj, dict) and "prompt" in obj and "response" in obj:
        return {"turns": [(str(obj["prompt"]), str(obj["response"]))]}
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return {"text": obj["text"]}
    if isinstance(obj, str):
        return {"text": obj}
    raise UserError(f"{where}: a record must hold 'conversation', 'prompt'+'response' or 'text'")


def read_records(paths: Iterable[str]) -> list[dict]:
    """All records of the data files, in file order.

    .jsonl: one JSON object per line ({"conversation": [{"human", "assistant"}, ...]},
    {"prompt", "response"} or {"text"}); any other file is plain text with documents separated by blank lines.
    """
    records: list[dict] = []
    paths = list(paths)
    for path in paths:
        if not os.path.isfile(path):
            raise UserError(f"data file {path!r} does not exist; fix data.paths")
        with open(path, encoding="utf-8") as f:
            if path.endswith((".jsonl", ".json")):
                for n, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{n} is not valid JSON ({e.msg}); "
                                        "write one JSON object per line") from None
                    records.append(_normalize(obj, f"{path}:{n}"))
            else:
                records += [{"text": d.strip()} for d in f.read().split("\n\n") if d.strip()]
    if not records:
        raise UserError(f"the data files {', '.join(paths)} hold no examples; add training records")
    return records


# -------------------------------------------------------------------------------------------- tokenizing

class ByteTokenizer:
    """A dependency-free tokenizer for tiny test models: UTF-8 bytes plus a few special ids.

    0 pad, 1 bos, 2 eos (ends each assistant turn and each text), 3 user, 4 assistant, 5 a free id
    meant as the PARD mask token, 6-7 reserved; byte b is id 8 + b. Vocabulary: 264.
    """

    pad_token_id, bos_token_id, eos_token_id, user_id, assistant_id, mask_id = 0, 1, 2, 3, 4, 5
    offset = 8
    vocab_size = 264

    def encode(self, text: str) -> list[int]:
        return [self.offset + b for b in text.encode("utf-8")]

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i - self.offset for i in ids if i >= self.offset).decode("utf-8", errors="replace")

    def chat_pieces(self, turns: Turns) -> list[tuple[list[int], bool]]:
        pieces = [([self.bos_token_id], False)]
        for human, assistant in turns:
            pieces.append(([self.user_id] + self.encode(human) + [self.assistant_id], False))
            pieces.append((self.encode(assistant) + [self.eos_token_id], True))
        return pieces

    def text_ids(self, text: str) -> list[int]:
        return [self.bos_token_id] + self.encode(text) + [self.eos_token_id]


def _hf_chat_pieces(tok, turns: Turns, chat_template: bool) -> list[tuple[list[int], bool]]:
    """(ids, is_assistant) pieces of a conversation rendered with an HF tokenizer's chat template.

    The template is rendered for growing prefixes of the conversation, so that the assistant's tokens
    are exactly what the template adds after the generation prompt.
    """
    def enc(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False) if text else []

    if not chat_template or not getattr(tok, "chat_template", None):
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        pieces = []
        for human, assistant in turns:
            pieces += [(enc(human + "\n"), False), (enc(assistant) + eos, True)]
        return pieces
    messages: list[dict] = []
    pieces, rendered = [], ""
    for human, assistant in turns:
        messages.append({"role": "user", "content": human})
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": assistant})
        full = tok.apply_chat_template(messages, tokenize=False)
        if not (prompt.startswith(rendered) and full.startswith(prompt)):
            # A template that rewrites earlier turns (e.g. drops past reasoning): render turns one by one.
            return [p for h, a in turns for p in _hf_chat_pieces(tok, [(h, a)], chat_template)]
        pieces += [(enc(prompt[len(rendered):]), False), (enc(full[len(prompt):]), True)]
        rendered = full
    return pieces


def encode_record(record: dict, tok, *, chat_template: bool, train_on_prompt: bool,
                  max_length: int) -> dict[str, np.ndarray]:
    """A record -> {"ids": int32 [n], "targets": bool [n]} (n <= max_length; targets = tokens trained as predictions)."""
    if "text" in record:
        if isinstance(tok, ByteTokenizer):
            ids = tok.text_ids(record["text"])
        else:
            ids = tok.encode(record["text"], add_special_tokens=True)
            if tok.eos_token_id is not None:
                ids = ids + [tok.eos_token_id]
        pieces = [(ids, True)]
    elif isinstance(tok, ByteTokenizer):
        pieces = tok.chat_pieces(record["turns"])
    else:
        pieces = _hf_chat_pieces(tok, record["turns"], chat_template)
    ids = np.asarray([i for p, _ in pieces for i in p], np.int32)[:max_length]
    targets = np.asarray([train_on_prompt or t for p, t in pieces for _ in p], bool)[:max_length]
    return {"ids": ids, "targets": targets}


# --------------------------------------------------------------------------------------------- packing

class _PackedRowsIterator(grain.DatasetIterator):
    """Pulls `window` examples, packs them (first-fit decreasing), emits the rows, repeats.

    State = (the parent's state where the current window started, rows emitted from it): restoring
    re-pulls the same window (the parent is deterministic), re-packs it and skips the emitted rows.
    """

    def __init__(self, parent: grain.DatasetIterator, row_length: int, window: int):
        super().__init__(parent)
        self._row_length, self._window = row_length, window
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
            self._rows, self._emitted = packing.pack(examples, self._row_length), 0
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
    """Examples (dicts of [N_i] arrays) -> packed rows (dicts of [row_length] int32 arrays, with `segments`)."""

    def __init__(self, parent: grain.IterDataset, row_length: int, window: int):
        super().__init__(parent)
        self._row_length, self._window = row_length, window

    def __iter__(self) -> _PackedRowsIterator:
        return _PackedRowsIterator(self._parent.__iter__(), self._row_length, self._window)


# -------------------------------------------------------------------------------------------- pipeline

def example_dataset(records: list[dict], tok, *, para_num: int, r: float, r_min: float, mask_id: int,
                    max_length: int, chat_template: bool = True, train_on_prompt: bool = False, seed: int = 0,
                    process_index: int = 0, process_count: int = 1, epochs: int | None = None) -> grain.MapDataset:
    """This process's shard of the records, shuffled per epoch, tokenized and COD-sampled (`epochs=None`: endless)."""
    shard = grain.MapDataset.source(records)[process_index::process_count]
    if len(shard) == 0:
        raise UserError(f"process {process_index} of {process_count} gets no records from {len(records)}; "
                        "add training data or use fewer processes")
    ds = shard.shuffle(seed=seed).repeat(epochs)
    ds = ds.map(lambda rec: encode_record(rec, tok, chat_template=chat_template, train_on_prompt=train_on_prompt,
                                          max_length=max_length))
    return ds.random_map(lambda ex, rng: cod.cod_example(ex["ids"], ex["targets"], para_num, r, r_min, mask_id, rng),
                         seed=seed + 1)


def row_dataset(examples: grain.MapDataset, *, row_length: int, rows_per_batch: int,
                pack_window: int = 64) -> grain.IterDataset:
    """Packed rows batched into dicts of [rows_per_batch, row_length] int32 arrays."""
    rows = PackedRows(examples.to_iter_dataset(), row_length, pack_window)
    return rows.batch(rows_per_batch, drop_remainder=True)


def train_batches(cfg, tok, *, process_index: int = 0, process_count: int = 1) -> grain.DatasetIterator:
    """The checkpointable iterator of this process's training batches for a `TrainConfig`.

    Each batch is a dict of int32 [train.batch_size / process_count, data.row_length] arrays.
    """
    records = read_records(cfg.data.paths)
    budget = cod.token_budget(cfg.data.max_length, cfg.pard.para_num, cfg.pard.r, cfg.pard.r_min)
    if budget > cfg.data.row_length:
        raise UserError(f"data.row_length={cfg.data.row_length} cannot hold one example of data.max_length="
                        f"{cfg.data.max_length} tokens ({budget} tokens after COD); raise data.row_length to "
                        f"{budget} or more, or lower data.max_length")
    examples = example_dataset(
        records, tok, para_num=cfg.pard.para_num, r=cfg.pard.r, r_min=cfg.pard.r_min,
        mask_id=cfg.pard.mask_token_id, max_length=cfg.data.max_length, chat_template=cfg.data.chat_template,
        train_on_prompt=cfg.data.train_on_prompt, seed=cfg.data.seed, process_index=process_index,
        process_count=process_count)
    rows = row_dataset(examples, row_length=cfg.data.row_length,
                       rows_per_batch=cfg.train.batch_size // process_count, pack_window=cfg.data.pack_window)
    return rows.__iter__()
