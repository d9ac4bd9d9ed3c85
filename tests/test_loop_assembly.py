"""The one assembly of the decode loop (`speculative.assemble`): the mask-id rule, what each mode's loop holds,
and `Generator.with_mode` giving the very loop (and programs) of a plain run."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import pytest

from pard_jax.errors import UserError
from pard_jax.speculative import assemble, infer_dry_run
from pard_jax.speculative.config import InferConfig
from pard_jax.speculative.generator import Generator
from pard_jax.speculative.loop import DecodeLoop
from pard_jax.weights.tokenizer import ByteTokenizer
from tests.tiny_models import tiny_config, tiny_params

CFG = tiny_config()  # vocabulary 0..63
EOS = (2,)


def draft(pard_token=None, vocab=64):
    return dataclasses.replace(tiny_config(vocab=vocab), pard_token=pard_token)


def loop_of(mode="pard", k=4, draft_cfg=None, **kw) -> DecodeLoop:
    c = InferConfig(target="target", draft="draft", mode=mode, k=k, dtype="float32", **kw)
    return assemble.decode_loop(c, CFG, draft_cfg, eos_ids=EOS)


@pytest.mark.parametrize("override, pard_token, expected", [(7, 5, 7), (None, 5, 5), (0, None, 0)])
def test_the_mask_id_is_the_override_else_the_drafts_pard_token(override, pard_token, expected):
    assert assemble.mask_id_of(draft(pard_token), override) == expected
    assert loop_of(draft_cfg=draft(pard_token), mask_token_id=override).mask_id == expected


@pytest.mark.parametrize("override, pard_token, error", [
    (None, None, "no `pard_token`.*pass --mask-token-id"),
    (64, 5, "--mask-token-id 64 is outside the vocabulary"),
    (-1, None, "--mask-token-id -1 is outside the vocabulary"),
    (None, 70, "the draft's pard_token 70 is outside the vocabulary"),
    (2, None, "EOS"),
])
def test_a_missing_or_unusable_mask_id_is_one_sentence(override, pard_token, error):
    with pytest.raises(UserError, match=error):
        loop_of(draft_cfg=draft(pard_token), mask_token_id=override)


def test_with_a_tokenizer_the_mask_id_never_occurs_in_text():
    tok = ByteTokenizer()
    assert assemble.mask_id_of(draft(vocab=tok.vocab_size), tok.mask_id, tok) == tok.mask_id
    with pytest.raises(UserError, match="the text, the chat template or EOS uses"):
        assemble.mask_id_of(draft(vocab=tok.vocab_size), tok.offset + 65, tok)


def test_each_mode_holds_only_what_it_uses():
    ar = loop_of("ar", k=8, mask_token_id=5)
    assert (ar.k, ar.draft_cfg, ar.mask_id) == (0, None, None)
    sd = loop_of("sd", k=3, draft_cfg=draft())  # no mask id needed, none kept
    assert (sd.k, sd.draft_cfg, sd.mask_id) == (3, draft(), None)
    pard = loop_of("pard", k=3, draft_cfg=draft(5))
    assert (pard.k, pard.mask_id) == (3, 5)
    # Dropping the draft makes the same loop (the same jit key) as a plain ar one.
    assert dataclasses.replace(pard, mode="ar") == ar and hash(dataclasses.replace(sd, mode="ar")) == hash(ar)
    with pytest.raises(UserError, match="needs mask_id"):
        DecodeLoop(CFG, mode="pard", k=3, draft_cfg=draft(5))  # no silent mask id 0
    with pytest.raises(UserError, match="needs a draft model"):
        loop_of("sd", k=3)


@pytest.mark.parametrize("platform, dtype", [("cpu", jnp.float32), ("gpu", jnp.bfloat16), ("tpu", jnp.bfloat16)])
def test_dtype_auto_follows_the_platform_compiled_for(platform, dtype):
    c = InferConfig(target="target", dtype="auto")
    assert assemble.decode_loop(c, CFG, None, eos_ids=(), platform=platform).dtype == dtype


def test_a_dry_run_stands_in_a_mask_id_only_for_the_shape_tables_drafts(tmp_path):
    c = InferConfig(target="Qwen/Qwen3-8B", draft="amd/PARD-Qwen3-0.6B", mode="pard", k=4)
    assert assemble.mask_unknown(c, infer_dry_run.decode_loop(c, layers=1).draft_cfg)
    assert infer_dry_run.decode_loop(c, layers=1).mask_id == 151935  # the draft vocabulary's last id
    assert infer_dry_run.decode_loop(dataclasses.replace(c, mask_token_id=151670), layers=1).mask_id == 151670
    (tmp_path / "config.json").write_text(json.dumps(CFG.to_hf_dict()))  # a local draft without pard_token
    with pytest.raises(UserError, match="pass --mask-token-id"):
        infer_dry_run.decode_loop(dataclasses.replace(c, target=str(tmp_path), draft=str(tmp_path)))


def test_with_mode_makes_the_plain_ar_loop_and_finds_the_draft_again():
    target, draft_params = tiny_params(CFG, 0), tiny_params(CFG, 1)
    prompts = [[5, 9, 2, 33, 17]]
    pard = Generator(loop_of(draft_cfg=draft(3), max_new_tokens=12), target, draft_params)
    plain = Generator(loop_of("ar", max_new_tokens=12), target)
    expected = [r.token_ids for r in plain.generate(prompts)]
    ar = pard.with_mode("ar")
    assert ar.loop == plain.loop
    assert [r.token_ids for r in ar.generate(prompts)] == expected and ar.programs_compiled == 0  # plain's programs
    assert [r.token_ids for r in pard.generate(prompts)] == expected
    back = ar.with_mode("sd", 2).with_mode("pard", 4)  # pard -> ar -> sd -> pard
    assert back.loop == pard.loop
    assert [r.token_ids for r in back.generate(prompts)] == expected and back.programs_compiled == 0
    with pytest.raises(UserError, match="needs mask_id"):  # an sd generator knows no mask id
        Generator(loop_of("sd", draft_cfg=draft()), target, draft_params).with_mode("pard", 4)
    with pytest.raises(UserError, match="needs a draft model"):
        plain.with_mode("pard", 4)
