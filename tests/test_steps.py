"""The acceptance rule and the commit step (`speculative.steps.accept_greedy`, `commit`) on small hand-made arrays
whose answers are known: how many draft tokens are kept, which token comes next, what is appended to each row,
where a row stops (EOS, max_new_tokens) and what a finished row keeps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pard_jax import accept_greedy, commit  # the exported steps (pard_jax.speculative.steps)

V = 10  # vocabulary of the hand-made logits
EOS = 9


def logits_choosing(choices: list[list[int]]) -> jnp.ndarray:
    """Target logits [B, k+1, V] whose argmax at row b, position j is choices[b][j]."""
    return 5.0 * jax.nn.one_hot(jnp.asarray(choices), V) - 1.0


def accept(draft: list[list[int]], choices: list[list[int]]) -> tuple[list[int], list[int]]:
    n, nxt = accept_greedy(jnp.asarray(draft, jnp.int32).reshape(len(choices), -1), logits_choosing(choices))
    assert n.dtype == jnp.int32 and nxt.dtype == jnp.int32
    return n.tolist(), nxt.tolist()


def test_accept_greedy_keeps_the_drafts_that_equal_the_targets_choice_up_to_the_first_miss():
    choices = [[4, 5, 6, 7]] * 5
    draft = [[4, 5, 6],  # all three: the bonus token is the target's choice after them
             [1, 5, 6],  # rejected at position 0: nothing kept, the target's first choice comes next
             [4, 5, 1],  # two kept, the target's choice replaces the third
             [4, 1, 6],  # a match after a miss does not count
             [4, 5, 7]]
    assert accept(draft, choices) == ([3, 0, 2, 1, 2], [7, 4, 6, 5, 6])


def test_accept_greedy_with_no_draft_is_plain_decoding():
    assert accept([[], []], [[3], [8]]) == ([0, 0], [3, 8])


def step(rows: list[dict], k: int, max_new_tokens: int = 100, eos_ids=(EOS,)) -> list[dict]:
    """`commit` on a batch of rows, each {prompt: [...], generated: [...], draft: [k ids], n, next, done};
    per row: the committed tokens after the prompt, done, and the accepted mask."""
    C = 16
    seq = np.zeros((len(rows), C), np.int32)
    for b, r in enumerate(rows):
        old = r["prompt"] + r["generated"]
        seq[b, :len(old)] = old
        seq[b, len(old):] = -1  # never committed: must not be read back
    prompt_len = jnp.asarray([len(r["prompt"]) for r in rows], jnp.int32)
    last = prompt_len + jnp.asarray([len(r["generated"]) for r in rows], jnp.int32) - 1
    done = jnp.asarray([r.get("done", False) for r in rows])
    draft = jnp.asarray([r["draft"] for r in rows], jnp.int32).reshape(len(rows), k)
    n = jnp.asarray([r["n"] for r in rows], jnp.int32)
    nxt = jnp.asarray([r["next"] for r in rows], jnp.int32)
    c = commit(jnp.asarray(seq), prompt_len, last, done, draft, n, nxt, max_new_tokens=max_new_tokens,
               eos_ids=eos_ids)
    out = []
    for b, r in enumerate(rows):
        committed = np.asarray(c.seq[b, len(r["prompt"]):int(c.last[b]) + 1]).tolist()
        assert np.asarray(c.seq[b, :len(r["prompt"])]).tolist() == r["prompt"]
        out.append({"tokens": committed, "done": bool(c.done[b]), "accepted": np.asarray(c.accepted[b]).tolist()})
    return out


def test_commit_appends_the_kept_drafts_then_the_next_token():
    rows = [dict(prompt=[1, 2], generated=[3], draft=[4, 5, 6], n=3, next=7),  # everything, and the bonus
            dict(prompt=[1], generated=[], draft=[4, 5, 6], n=0, next=8),  # rejected at position 0
            dict(prompt=[1, 2, 3], generated=[5, 5], draft=[4, 5, 6], n=2, next=1)]
    got = step(rows, k=3)
    assert [g["tokens"] for g in got] == [[3, 4, 5, 6, 7], [8], [5, 5, 4, 5, 1]]
    assert [g["done"] for g in got] == [False, False, False]
    assert [g["accepted"] for g in got] == [[True, True, True], [False, False, False], [True, True, False]]


def test_commit_with_no_draft_appends_one_token():
    got = step([dict(prompt=[1, 2], generated=[6], draft=[], n=0, next=4),
                dict(prompt=[3], generated=[], draft=[], n=0, next=EOS)], k=0)
    assert got == [{"tokens": [6, 4], "done": False, "accepted": []},
                   {"tokens": [EOS], "done": True, "accepted": []}]


def test_an_eos_inside_an_accepted_block_ends_the_row_after_it():
    rows = [dict(prompt=[1], generated=[2], draft=[4, EOS, 6], n=3, next=7),  # EOS among the kept drafts
            dict(prompt=[1], generated=[2], draft=[4, 5, 6], n=3, next=EOS),  # EOS as the bonus token
            dict(prompt=[1], generated=[2], draft=[4, EOS, 6], n=1, next=5),  # a rejected EOS is no EOS
            dict(prompt=[1], generated=[2], draft=[EOS, EOS, 6], n=2, next=5)]  # the first EOS counts
    got = step(rows, k=3)
    assert [g["tokens"] for g in got] == [[2, 4, EOS], [2, 4, 5, 6, EOS], [2, 4, 5], [2, EOS]]
    assert [g["done"] for g in got] == [True, True, False, True]
    # `accepted` is the acceptance rule's verdict per draft position, whether or not EOS cut it off after.
    assert got[0]["accepted"] == [True, True, True]
    # Without EOS ids the same tokens are ordinary ones.
    assert step(rows[:1], k=3, eos_ids=())[0] == {"tokens": [2, 4, EOS, 6, 7], "done": False,
                                                 "accepted": [True, True, True]}


def test_max_new_tokens_cuts_a_block():
    rows = [dict(prompt=[1, 2], generated=[3, 3], draft=[4, 5, 6], n=3, next=7),  # room for 3 of 4
            dict(prompt=[1], generated=[3, 3, 3, 3], draft=[4, 5, 6], n=1, next=7),  # room for 1 of 2
            dict(prompt=[1], generated=[3], draft=[4, 5, 6], n=2, next=7),  # room for all 3
            dict(prompt=[1], generated=[3], draft=[4, EOS, 6], n=3, next=7),  # EOS inside the room: EOS ends
            dict(prompt=[1], generated=[3, 3, 3], draft=[4, 5, EOS], n=3, next=7)]  # EOS past the room: cut
    got = step(rows, k=3, max_new_tokens=5)
    assert [g["tokens"] for g in got] == [[3, 3, 4, 5, 6], [3, 3, 3, 3, 4], [3, 4, 5, 7], [3, 4, EOS],
                                          [3, 3, 3, 4, 5]]
    assert [g["done"] for g in got] == [True, True, False, True, True]
    got = step(rows[2:3], k=3, max_new_tokens=4)  # the block fills the room exactly
    assert got[0]["tokens"] == [3, 4, 5, 7] and got[0]["done"]


def test_a_finished_row_keeps_its_tokens_and_accepts_nothing():
    rows = [dict(prompt=[1, 2], generated=[3, EOS], draft=[4, 5], n=2, next=6, done=True),
            dict(prompt=[1, 2], generated=[3], draft=[4, 5], n=2, next=6)]
    got = step(rows, k=2)
    assert got[0] == {"tokens": [3, EOS], "done": True, "accepted": [False, False]}
    assert got[1] == {"tokens": [3, 4, 5, 6], "done": False, "accepted": [True, True]}
