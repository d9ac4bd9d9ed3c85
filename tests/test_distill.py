"""Distillation data: prompt filters, the 8-gram exclusion, shards, the sub-vocabulary choice, and a stopped
run that continues where it was."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pard_jax.distill import filters, shards, vocab
from pard_jax.distill.run import DistillRun
from pard_jax.errors import UserError
from pard_jax.training.records import encode_record, read_records


def test_filters_keep_sensible_english_requests():
    assert filters.acceptable_prompt("How do I sort a list of tuples by the second item?")
    assert not filters.acceptable_prompt("Hi there")  # too short
    assert not filters.acceptable_prompt("Explain this <|im_start|> thing to me please")
    assert not filters.acceptable_prompt("Объясни, пожалуйста, как работает сортировка списков")
    kept = filters.dedupe([("What is 2+2?", "self"), ("what is 2 + 2", "self"), ("Name three rivers.", "self")])
    assert [t for t, _ in kept] == ["What is 2+2?", "Name three rivers."]


def test_eight_gram_overlap_with_an_excluded_set_is_found():
    excluded = ["Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning."]
    texts = ["janet s ducks lay 16 eggs per day she eats three for lunch",  # shares 8 words in a row
             "Janet's ducks lay eggs. How many?"]
    assert filters.overlapping(texts, excluded) == [True, False]


def test_shard_round_trip_and_training_records(tmp_path):
    path = tmp_path / "shard-00000.npz"
    shards.write_shard(path, [[1, 2, 3], [4]], [[5, 6], [70000, 8, 2]], ["template", "self"])
    got = shards.read_shard(path)
    assert [r["prompt_ids"].tolist() for r in got] == [[1, 2, 3], [4]]
    assert [r["response_ids"].tolist() for r in got] == [[5, 6], [70000, 8, 2]]  # uint32 when ids need it
    assert [r["source"] for r in got] == ["template", "self"]
    rec = read_records([str(path)])[0]
    enc = encode_record(rec, None, chat_template=True, train_on_prompt=False, max_length=16)
    assert enc["ids"].tolist() == [1, 2, 3, 5, 6]
    assert enc["targets"].tolist() == [False, False, False, True, True]


def test_frequent_ids_and_coverage():
    counts = vocab.token_counts([np.array([5, 5, 5, 2, 2, 9]), np.array([2, 7])], vocab_size=10)
    ids = vocab.frequent_ids(counts, 3, always=[0])
    assert ids.tolist() == [0, 2, 5]  # 0 forced, then the most frequent: 2 (3x) and 5 (3x)
    assert vocab.coverage(counts, ids) == pytest.approx(6 / 8)


@dataclasses.dataclass
class _Result:
    token_ids: list

    @property
    def num_generated(self):
        return len(self.token_ids)


class _FakeGenerator:
    """Answers each prompt with its reversed ids; counts calls."""

    calls = 0

    def generate(self, prompts, seed=0):
        self.calls += 1
        return [_Result(list(reversed(p))) for p in prompts]


class _FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(m["content"] for m in messages)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % 50 for c in text]}


def test_answers_resume_after_a_stop(tmp_path, monkeypatch):
    import pard_jax.distill.run as run_module

    monkeypatch.setattr(run_module, "encode_prompt", lambda tok, text, chat_template=True: [len(text), 1])
    run = DistillRun(str(tmp_path), log=lambda _: None)
    rows = run.finalize_prompts([(f"prompt number {i}", "template") for i in range(5)], excluded=[], seed=0)
    assert len(run.prompts()) == 5
    gen = _FakeGenerator()
    run.answer(gen, _FakeTokenizer(), rows[:4], shard_size=2, progress=lambda *a: None)  # "stopped" after 2 shards
    first = (tmp_path / "shard-00000.npz").read_bytes()
    # Training refuses the folder while it is incomplete, but takes its finished shards when listed.
    with pytest.raises(UserError, match="answers 4 of its 5 prompts: it is still being made"):
        read_records([str(tmp_path)])
    assert len(read_records([str(tmp_path / "shard-00000.npz"), str(tmp_path / "shard-00001.npz")])) == 4
    gen2 = _FakeGenerator()
    run.answer(gen2, _FakeTokenizer(), rows, shard_size=2, progress=lambda *a: None)
    assert gen2.calls == 1  # only the missing third shard
    assert (tmp_path / "shard-00000.npz").read_bytes() == first
    manifest = run.write_manifest(recipe={"seed": 0})
    assert manifest["total_prompts"] == 5 and manifest["total_answer_tokens"] == 10
    assert json.loads((tmp_path / "manifest.json").read_text())["shards"]["shard-00002.npz"]["prompts"] == 1
    assert len(read_records([str(tmp_path)])) == 5
