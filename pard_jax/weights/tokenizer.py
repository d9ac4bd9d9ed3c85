"""Tokenizers: transformers tokenizers from an HF directory, a hub id or a GGUF file, and chat prompts.

A GGUF file's tokenizer is converted by transformers once (seconds) and cached with `save_pretrained` next
to the file's cached params (see `pard_jax.gguf_weights.gguf_cache_dir`).
"""

from __future__ import annotations

import os

from pard_jax import gguf_weights
from pard_jax.errors import UserError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _from_pretrained(*args, what: str, fast_only: bool = False, **kwargs):
    # PreTrainedTokenizerFast imports in half the time of AutoTokenizer; it suffices for our own saved copies.
    if fast_only:
        from transformers import PreTrainedTokenizerFast as cls
    else:
        from transformers import AutoTokenizer as cls

    try:
        return cls.from_pretrained(*args, **kwargs)
    except UserError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load a tokenizer from {what} ({first}); pass an HF model directory with "
                        "tokenizer files or a .gguf file") from e


def _gguf_tokenizer(path: str):
    cached = gguf_weights.gguf_cache_dir(path) / "tokenizer"
    if (cached / "tokenizer_config.json").is_file():
        try:
            return _from_pretrained(str(cached), what=str(cached), fast_only=True)
        except UserError:
            pass  # a damaged cache entry: convert again
    tok = _from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), what=path)
    gguf_weights.atomic_write_dir(cached, lambda tmp: tok.save_pretrained(str(tmp)))
    return tok


def load_tokenizer(source: str):
    """A transformers tokenizer from an HF dir, a .gguf file, the SmolLM2 alias, or an HF hub id."""
    source = str(source)
    if source == gguf_weights.SMOLLM2_ALIAS:
        return _gguf_tokenizer(gguf_weights.smollm2_gguf_path())
    path = os.path.expanduser(source)
    if os.path.isfile(path) and path.lower().endswith(".gguf"):
        return _gguf_tokenizer(path)
    if os.path.isdir(path):
        if not any(os.path.isfile(os.path.join(path, f)) for f in _TOKENIZER_FILES):
            raise UserError(f"{source} has no tokenizer files (tokenizer.json, tokenizer_config.json, ...); "
                            "pass a directory saved with tokenizer.save_pretrained or a .gguf file")
        return _from_pretrained(path, what=source)
    if os.path.exists(path):
        raise UserError(f"{source} is neither a directory nor a .gguf file; pass one of those for the tokenizer")
    if "/" in source and not source.startswith((".", "/", "~")):
        return _from_pretrained(source, what=f"the Hugging Face Hub id {source!r}")
    raise UserError(f"{source} does not exist; pass an HF model directory or a .gguf file for the tokenizer")


def encode_prompt(tokenizer, text: str, chat_template: bool = True) -> list[int]:
    """Token ids of `text`: as a single user turn of the chat template (with the assistant prefix) when the
    tokenizer has one and `chat_template` is True, else the plain text with the tokenizer's special tokens."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    return list(tokenizer(text)["input_ids"])
