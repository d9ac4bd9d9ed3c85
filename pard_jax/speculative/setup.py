"""Inference setup shared by the programs: the typed config, loading models, and the checks between them."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax.numpy as jnp

from pard_jax.decoding import MODES, Engine
from pard_jax.errors import UserError
from pard_jax.generation import Generator
from pard_jax.sampling import SamplingParams

MAX_K = 32
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass
class InferConfig:
    target: str = "smollm2-135m-instruct"
    draft: str | None = None
    draft_layers: int | None = None  # keep only the first N layers of the draft (a cheap untrained draft)
    mode: str = "ar"
    k: int = 8
    mask_token_id: int | None = None  # default: the draft's config.json `pard_token`
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 1
    chat_template: bool = True
    dtype: str = "float32"
    max_cache_len: int = 4096
    stream_every: int = 4  # iterations between screen updates when streaming


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def validate(c: InferConfig) -> SamplingParams:
    if c.mode not in MODES:
        raise UserError(f"unknown mode {c.mode!r}; choose one of {', '.join(MODES)}")
    if c.mode != "ar" and not c.draft:
        raise UserError(f"mode {c.mode!r} needs a draft model; pass --draft SPEC or use --mode ar")
    if c.mode != "ar" and not 1 <= c.k <= MAX_K:
        raise UserError(f"k must be between 1 and {MAX_K}, got {c.k}")
    if c.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {c.max_new_tokens}")
    if c.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {c.batch_size}")
    if c.dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {c.dtype!r}")
    return SamplingParams(c.temperature, c.top_k, c.top_p)


def check_mask_token(mask_id: int | None, vocab: int, tokenizer, eos_ids) -> int:
    if mask_id is None:
        raise UserError("the draft has no `pard_token` in its config.json; pass --mask-token-id N "
                        "(the id it was trained with)")
    if not 0 <= mask_id < vocab:
        raise UserError(f"mask token id {mask_id} is outside the vocabulary (0..{vocab - 1}); "
                        "pass the id the draft was trained with")
    from pard_jax.tokenizer import encode_prompt

    template_ids = set(encode_prompt(tokenizer, "hi", True)) | set(eos_ids)
    if mask_id in template_ids:
        raise UserError(f"mask token id {mask_id} is a token the chat template or EOS uses; "
                        "choose a reserved id the text never contains")
    return mask_id


def eos_ids_of(cfg, tokenizer) -> tuple[int, ...]:
    ids = set(cfg.eos_token_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return tuple(sorted(ids))


@dataclasses.dataclass
class Session:
    generator: Generator
    tokenizer: object
    config: InferConfig


def build(c: InferConfig) -> Session:
    """Load target (and draft), check they fit together, and build a Generator."""
    from pard_jax.tokenizer import load_tokenizer
    from pard_jax.weights import load_model

    sp = validate(c)
    dtype = DTYPES[c.dtype]
    log(f"loading target {c.target} ...")
    target = load_model(c.target, dtype=dtype)
    tokenizer = load_tokenizer(target.tokenizer_source)
    eos = eos_ids_of(target.cfg, tokenizer)
    draft = None
    mask_id = 0
    if c.mode != "ar":
        log(f"loading draft {c.draft}" + (f" (first {c.draft_layers} layers)" if c.draft_layers else "") + " ...")
        draft = load_model(c.draft, dtype=dtype, num_layers=c.draft_layers, shared_embed=target.params["embed"])
        real_vocab = len(tokenizer)
        if min(draft.cfg.vocab_size, target.cfg.vocab_size) < real_vocab:
            raise UserError(f"draft vocabulary ({draft.cfg.vocab_size}) and target vocabulary "
                            f"({target.cfg.vocab_size}) do not match: the draft must share the target's tokenizer")
        if c.mode == "pard":
            mask_id = check_mask_token(c.mask_token_id if c.mask_token_id is not None else draft.cfg.pard_token,
                                       draft.cfg.vocab_size, tokenizer, eos)
    engine = Engine(target.cfg, mode=c.mode, k=c.k if c.mode != "ar" else 0,
                    draft_cfg=draft.cfg if draft else None, mask_id=mask_id, sampling=sp,
                    max_new_tokens=c.max_new_tokens, eos_ids=eos, dtype=dtype)
    gen = Generator(engine, target.params, draft.params if draft else None, batch_size=c.batch_size,
                    max_cache_len=c.max_cache_len)
    return Session(gen, tokenizer, c)


def read_prompts(path: str) -> list[str]:
    """JSONL with a `data` or `prompt` field per line, or plain text with one prompt per line."""
    if not os.path.isfile(path):
        raise UserError(f"prompts file {path!r} does not exist; pass an existing file with --prompts-file")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read prompts file {path!r} ({e}); pass a readable UTF-8 text or JSONL file") from None
    if not lines:
        raise UserError(f"prompts file {path!r} is empty; put one prompt per line or one JSON object per line")
    jsonl = path.endswith(".jsonl") or lines[0].lstrip().startswith("{")
    if not jsonl:
        return lines
    prompts = []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{n} is not valid JSON; give one JSON object per line") from None
        text = obj.get("data", obj.get("prompt")) if isinstance(obj, dict) else None
        if not isinstance(text, str):
            raise UserError(f"{path}:{n} has no string field 'data' or 'prompt'")
        prompts.append(text)
    return prompts
