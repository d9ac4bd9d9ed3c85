"""The one assembly of a DecodeLoop: from an inference config and the target's and draft's model configs.

Every program that decodes (generation, its dry run, bench, bench_calls) builds its loop here, so that the
rules below hold everywhere: the mask id of a PARD draft, the check that the draft shares the target's
vocabulary, and the dtype "auto" means.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import jax

from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.models import shapes
from pard_jax.models.config import ModelConfig, missing_hidden_states
from pard_jax.models.kernels import Kernels
from pard_jax.speculative.config import InferConfig, validate
from pard_jax.speculative.loop import DecodeLoop, Mode
from pard_jax.weights.tokenizer import check_mask_token


def mask_id_of(draft: ModelConfig, override: int | None = None, tokenizer=None, eos_ids: Iterable[int] = ()) -> int:
    """A PARD draft's mask token id: `override` (--mask-token-id), else the draft's own `pard_token`; checked to lie
    inside the draft's vocabulary and, given the `tokenizer`, never to be produced by text or be an EOS id."""
    mask_id = override if override is not None else draft.pard_token
    if mask_id is None:
        raise UserError("the draft has no `pard_token` in its config.json; pass --mask-token-id N (the id it was "
                        "trained with)")
    name = "--mask-token-id" if override is not None else "the draft's pard_token"
    return check_mask_token(mask_id, draft.vocab_size, tokenizer, eos_ids, name=name)


def mask_unknown(c: InferConfig, draft: ModelConfig | None) -> bool:
    """Whether a PARD config's mask id cannot be known because the draft's shape comes from the shape table, which
    holds a published draft's shapes but not its `pard_token` (a run with weights reads it from config.json)."""
    return (c.mode is Mode.PARD and c.mask_token_id is None and draft is not None and draft.pard_token is None
            and shapes.hf_config(c.draft) is not None and not os.path.exists(os.path.expanduser(c.draft)))


def with_stand_in_mask(c: InferConfig, draft: ModelConfig | None) -> InferConfig:
    """`c` for a program compiled from shapes alone (a dry run, random weights): where `mask_unknown`, the draft
    vocabulary's last id stands in for the mask id, a constant of the program (any id compiles to the same
    shapes, bytes and FLOPs). Whoever reports on the program says so."""
    return dataclasses.replace(c, mask_token_id=draft.vocab_size - 1) if mask_unknown(c, draft) else c


def check_shared_vocab(target: ModelConfig, draft: ModelConfig, tokenizer) -> None:
    """Refuse a draft whose vocabulary (or the target's) is smaller than the target's tokenizer."""
    if min(draft.vocab_size, target.vocab_size) < len(tokenizer):
        raise UserError(f"draft vocabulary ({draft.vocab_size}) and target vocabulary ({target.vocab_size}) do not "
                        f"match the tokenizer's {len(tokenizer)} ids: the draft must share the target's tokenizer")


def target_dependent(c: InferConfig, target: ModelConfig, draft: ModelConfig | None) -> bool:
    """Whether the loop drafts target-dependently (PARD-2): `pard2` td, or auto with a PARD-2 draft in PARD mode;
    a PARD-2 draft's features are checked against the target."""
    p2 = draft.pard2 if draft is not None else None
    if c.pard2 == "ti" or (c.pard2 == "auto" and (p2 is None or c.mode is not Mode.PARD)):
        return False
    if c.mode is not Mode.PARD or p2 is None:
        raise UserError("--pard2 td needs --mode pard and a PARD-2 draft (config.json spd_type pard2 and a "
                        "warp_model.bin); use --pard2 ti or auto")
    n = target.num_layers
    bad = missing_hidden_states(p2.target_layers, n)
    if bad:
        raise UserError(f"the draft reads target hidden states {bad}, which a {n}-layer target does not have "
                        f"(-{n + 1}..{n}); use the target it was trained for, or --pard2 ti")
    if p2.target_dim != len(p2.target_layers) * target.hidden_size:
        raise UserError(f"the draft's pard2_target_dim is {p2.target_dim} but {len(p2.target_layers)} hidden states "
                        f"of this target are {len(p2.target_layers) * target.hidden_size} wide; use the target it "
                        "was trained for, or --pard2 ti")
    return True


def decode_loop(c: InferConfig, target: ModelConfig, draft: ModelConfig | None, *, eos_ids: Iterable[int],
                tokenizer=None, platform: str | None = None) -> DecodeLoop:
    """The DecodeLoop that config `c` asks for with these models: its mode, k and mask id, target-dependent
    drafting, sampling, lengths, dtype and kernels. `eos_ids` end generation; `tokenizer` (None: no tokenizer at
    hand, as in a dry run) checks that the draft shares the target's vocabulary and that the mask id never occurs
    in text. `platform` is that of the devices the loop is compiled for (None: the devices at hand): dtype
    "auto" and the kernels (`Kernels.for_platform`) follow it."""
    sp = validate(c)
    platform = platform or jax.devices()[0].platform
    if c.mode.uses_draft and draft is None:
        raise UserError(f"mode {c.mode.value!r} needs a draft model; pass --draft SPEC or use --mode ar")
    if c.mode.uses_draft and tokenizer is not None:
        check_shared_vocab(target, draft, tokenizer)
    mask_id = mask_id_of(draft, c.mask_token_id, tokenizer, eos_ids) if c.mode is Mode.PARD else None
    return DecodeLoop(target, mode=c.mode, k=c.k, draft_cfg=draft, mask_id=mask_id, sampling=sp,
                      max_new_tokens=c.max_new_tokens, eos_ids=tuple(eos_ids),
                      dtype=dtype_of(c.dtype, platform), prefill_chunk=c.prefill_chunk,
                      kernels=Kernels.for_platform(platform),
                      target_dependent=target_dependent(c, target, draft))
