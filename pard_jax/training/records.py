"""Training records: reading data files into records, and encoding a record into token ids with a mask of
the tokens trained as predictions (the assistant's, unless `data.train_on_prompt`)."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Iterable

import numpy as np

from pard_jax.distill.shards import read_shard, shard_prompts
from pard_jax.errors import UserError
from pard_jax.weights.tokenizer import ByteTokenizer

Turns = list[tuple[str, str]]


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


def _check_complete(folder: str, shard_files: list[str]) -> None:
    """Refuse a distillation folder whose answers are still being written: a run that trained on it now and
    resumed later would see other data."""
    prompts = os.path.join(folder, "prompts.jsonl")
    if not os.path.isfile(prompts):
        return
    with open(prompts, encoding="utf-8") as f:
        want = sum(1 for line in f if line.strip())
    have = sum(shard_prompts(path) for path in shard_files)
    if have < want:
        raise UserError(f"the data folder {folder!r} answers {have} of its {want} prompts: it is still being made; "
                        "let make_distill_data.py finish it (the same command continues), or list its finished "
                        "shard-*.npz files in data.paths instead of the folder")


def read_records(paths: Iterable[str]) -> list[dict]:
    """All records of the data files, in file order.

    .jsonl: one JSON object per line ({"conversation": [{"human", "assistant"}, ...]},
    {"prompt", "response"} or {"text"}); .npz: a distillation shard of token ids (`pard_jax.distill.shards`);
    any other file is plain text with documents separated by blank lines. A folder stands for its distillation
    shards (shard-*.npz, in order).
    """
    records: list[dict] = []
    paths = list(paths)
    files = []
    for path in paths:
        if os.path.isdir(path):
            shard_files = sorted(glob.glob(os.path.join(path, "shard-*.npz")))
            if not shard_files:
                raise UserError(f"the data folder {path!r} holds no shard-*.npz files; fix data.paths")
            _check_complete(path, shard_files)
            files += shard_files
        else:
            files.append(path)
    for path in files:
        if not os.path.isfile(path):
            raise UserError(f"data file {path!r} does not exist; fix data.paths")
        if path.endswith(".npz"):  # a distillation shard: token ids already in the chat format
            records += [{"prompt_ids": r["prompt_ids"], "response_ids": r["response_ids"]} for r in read_shard(path)]
            continue
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
    if "prompt_ids" in record:  # already tokenized (distillation shards): the answer is what is learned
        pieces = [(list(record["prompt_ids"]), False), (list(record["response_ids"]), True)]
    elif "text" in record:
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


def trained_ids(records: list[dict], tokenizer, *, chat_template: bool = True,
                train_on_prompt: bool = False) -> list[np.ndarray]:
    """The ids each training record trains as predictions: the target's answers."""
    out = []
    for rec in records:
        e = encode_record(rec, tokenizer, chat_template=chat_template, train_on_prompt=train_on_prompt,
                          max_length=1 << 30)
        out.append(e["ids"][e["targets"]])
    return out
