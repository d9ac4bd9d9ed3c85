"""Tokenizers: transformers tokenizers from an HF directory, a hub id or a GGUF file; chat prompts; the
dependency-free byte tokenizer of the tiny training configs; and the one check of a PARD mask token id.

A GGUF file's tokenizer is converted by transformers once (seconds) and cached with `save_pretrained` next
to the file's cached params (see `pard_jax.weights.store.gguf_cache_dir`).
"""

from __future__ import annotations

import os
from typing import Iterable

from pard_jax.errors import UserError
from pard_jax.weights import store
from pard_jax.weights.sources import SMOLLM2_ALIAS, SMOLLM2_TOKENIZER_DIR, smollm2_gguf_path

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _from_pretrained(*args, what: str, fast_only: bool = False, **kwargs):
    # transformers is imported here, not at the top: it takes seconds (after JAX), and the byte tokenizer of the
    # tiny configs needs none of it. PreTrainedTokenizerFast imports in half the time of AutoTokenizer; it
    # suffices for our own saved copies.
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
    cached = store.gguf_cache_dir(path) / "tokenizer"
    if (cached / "tokenizer_config.json").is_file():
        try:
            return _from_pretrained(str(cached), what=str(cached), fast_only=True)
        except UserError:
            pass  # a damaged cache entry: convert again
    tok = _from_pretrained(os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), what=path)
    store.atomic_write_dir(cached, lambda tmp: tok.save_pretrained(str(tmp)))
    return tok


def load_tokenizer(source: str):
    """A transformers tokenizer from an HF dir, a .gguf file, the SmolLM2 alias, or an HF hub id."""
    source = str(source)
    if source == SMOLLM2_ALIAS:
        # The package ships this model's tokenizer (saved from the GGUF's), which loads without the GGUF
        # conversion in transformers, which needs PyTorch.
        if os.path.isfile(os.path.join(SMOLLM2_TOKENIZER_DIR, "tokenizer.json")):
            return _from_pretrained(SMOLLM2_TOKENIZER_DIR, what=SMOLLM2_TOKENIZER_DIR, fast_only=True)
        return _gguf_tokenizer(smollm2_gguf_path())
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

    def chat_pieces(self, turns: list[tuple[str, str]]) -> list[tuple[list[int], bool]]:
        pieces = [([self.bos_token_id], False)]
        for human, assistant in turns:
            pieces.append(([self.user_id] + self.encode(human) + [self.assistant_id], False))
            pieces.append((self.encode(assistant) + [self.eos_token_id], True))
        return pieces

    def text_ids(self, text: str) -> list[int]:
        return [self.bos_token_id] + self.encode(text) + [self.eos_token_id]


def text_token_ids(tokenizer) -> set[int]:
    """Ids that text uses: the chat template's, BOS and EOS (and, for the byte tokenizer, every byte)."""
    if isinstance(tokenizer, ByteTokenizer):
        return {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.user_id,
                tokenizer.assistant_id, *range(tokenizer.offset, tokenizer.vocab_size)}
    ids = set(encode_prompt(tokenizer, "hi", True))
    return ids | {i for i in (tokenizer.bos_token_id, tokenizer.eos_token_id) if i is not None}


def check_mask_token(mask_id: int, vocab: int, tokenizer, eos_ids: Iterable[int] = (), *,
                     name: str = "mask token id") -> int:
    """`mask_id` if it can serve as PARD's mask token: inside the vocabulary and never produced by text, the
    chat template or EOS (training and decoding must both be able to tell mask tokens from real ones). Without a
    `tokenizer` (a dry run reads none) only the vocabulary and EOS are checked.

    `name` is how the error sentence calls the setting (e.g. "pard.mask_token_id" in a training config).
    """
    if not 0 <= mask_id < vocab:
        raise UserError(f"{name} {mask_id} is outside the vocabulary (0..{vocab - 1}); "
                        "choose a reserved token id of the model (the one the draft was trained with)")
    text_ids = text_token_ids(tokenizer) if tokenizer is not None else set()
    if mask_id in text_ids | set(eos_ids):
        raise UserError(f"{name} {mask_id} is a token that the text, the chat template or EOS uses; "
                        "choose a reserved id that never occurs in text (the one the draft was trained with)")
    return mask_id
