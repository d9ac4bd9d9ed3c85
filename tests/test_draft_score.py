"""Teacher-forced draft scoring (`training.draft_score`) equals what the draft proposes at inference, anchor by
anchor."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from pard_jax.speculative.generator import Generator
from pard_jax.speculative.loop import DecodeLoop
from pard_jax.training.draft_score import score
from tests.tiny_models import forward, tiny_config, tiny_params

CFG = tiny_config()
MASK = 3
PROMPTS = [[5, 9, 2, 33, 17], [1], list(range(10, 40))]


@pytest.fixture(scope="module")
def target():
    return tiny_params(CFG, 0)


@pytest.fixture(scope="module")
def weak():
    return tiny_params(CFG, 1)


@pytest.fixture(scope="module")
def continuations(target):
    """The target's greedy continuations of PROMPTS (prompt + 16 new tokens) and the prompt lengths."""
    results = Generator(DecodeLoop(CFG, max_new_tokens=16), target).generate(PROMPTS)
    return [p + r.token_ids for p, r in zip(PROMPTS, results)], [len(p) for p in PROMPTS]


def proposals_at_inference(params, cfg, ids: list[int], anchor: int, k: int) -> np.ndarray:
    """What the draft proposes with `ids[anchor]` the newest committed token: one causal pass over
    ids[:anchor + 1] followed by k - 1 mask tokens (`speculative.steps.pard_draft`), read at the last k."""
    x = ids[:anchor + 1] + [MASK] * (k - 1)
    width = 64  # one padded shape for every anchor; a causal pass ignores what follows
    tokens = jnp.asarray([x + [0] * (width - len(x))], jnp.int32)
    logits = forward(params, cfg, tokens, jnp.arange(width, dtype=jnp.int32)[None])
    choice = np.asarray(jnp.argmax(logits[0, anchor:anchor + k], axis=-1))
    return choice if cfg.draft_vocab is None else np.asarray(cfg.draft_vocab)[choice]


def test_the_target_accepts_every_proposal_of_itself(target, continuations):
    seqs, plens = continuations
    a = score(target, CFG, seqs, plens, k=2, mask_id=MASK)
    assert a.anchors == sum(len(s) - p for s, p in zip(seqs, plens)) == 3 * 16
    assert a.accuracy[0] == 1.0
    assert a.tokens_per_call(1) == 2.0


@pytest.mark.parametrize("sub_vocabulary", [False, True])
def test_scores_equal_the_proposals_made_at_inference(weak, continuations, sub_vocabulary):
    cfg, params = CFG, weak
    if sub_vocabulary:  # a head over the even ids: an odd next token is a miss
        cfg = dataclasses.replace(CFG, draft_vocab=tuple(range(0, CFG.vocab_size, 2)))
        params = {**weak, "draft_head": weak["embed"][jnp.asarray(cfg.draft_vocab)]}
    k = 3
    seqs, plens = continuations
    got = score(params, cfg, seqs, plens, k=k, mask_id=MASK)

    hits, scored, runs = np.zeros(k, int), np.zeros(k, int), []
    for ids, plen in zip(seqs, plens):
        for anchor in range(plen - 1, len(ids) - 1):
            proposed = proposals_at_inference(params, cfg, ids, anchor, k)
            right = [anchor + j + 1 < len(ids) and proposed[j] == ids[anchor + j + 1] for j in range(k)]
            scored += [anchor + j + 1 < len(ids) for j in range(k)]
            hits += right
            runs.append(int(np.cumprod(right).sum()))
    np.testing.assert_array_equal(got.hits, hits)
    np.testing.assert_array_equal(got.scored, scored)
    np.testing.assert_array_equal(np.bincount(got.run_lengths, minlength=k + 1), np.bincount(runs, minlength=k + 1))
    assert 0 < got.accuracy[0] < 1  # a weak draft: some hits, some misses (the comparison above is not vacuous)
    assert got.tokens_per_call(2) == pytest.approx(1 + np.mean(np.minimum(runs, 2)))


def test_eval_draft_program_on_smollm2(capsys, tmp_path):
    """The program end to end: the target scored as its own draft accepts (nearly) everything, the shipped draft
    less; the second run takes the target's answers from the cache."""
    import json

    from pard_jax.cli import eval_draft

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"data": p}) + "\n" for p in ["What is 7 times 8?", "Name three colors."]))
    common = ["--prompts-file", str(prompts), "--max-new-tokens", "24", "-k", "2"]
    assert eval_draft.main([*common, "--draft", "smollm2-135m-instruct", "--mask-token-id", "16", "--json",
                            str(tmp_path / "self.json")]) == 0
    capsys.readouterr()
    assert eval_draft.main([*common, "--draft", "smollm2-135m-pard", "--json", str(tmp_path / "pard.json")]) == 0
    out, err = capsys.readouterr()
    assert "generating" not in err and out.startswith("p (2 prompts, ")
    own = json.loads((tmp_path / "self.json").read_text())["sets"]["p"]
    pard = json.loads((tmp_path / "pard.json").read_text())["sets"]["p"]
    assert own["anchors"] == pard["anchors"] > 0
    assert own["accuracy"][0] >= 0.98 and own["tokens_per_call"]["1"] >= 1.98
    assert 0 < pard["accuracy"][0] < own["accuracy"][0]
    assert 1 < pard["tokens_per_call"]["1"] <= pard["tokens_per_call"]["2"]


def test_eval_draft_bad_input_gives_one_clear_sentence(capsys, tmp_path):
    from pard_jax.cli import eval_draft

    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    cases = {
        "no checkpoint": (["--checkpoint", str(tmp_path / "missing")], "holds no checkpoints"),
        "step without checkpoint": (["--draft", "smollm2-135m-pard", "--step", "3"], "--step goes with --checkpoint"),
        "zero k": (["--draft", "smollm2-135m-pard", "-k", "0"], "must be positive"),
        "layers of a checkpoint": (["--checkpoint", str(tmp_path), "--draft-layers", "2"], "--draft-layers goes with"),
    }
    for name, (argv, phrase) in cases.items():
        assert eval_draft.main(["--prompts-file", str(prompts), *argv]) == 2, name
        out, err = capsys.readouterr()
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and phrase in lines[0], (name, err)
