"""Which prompts to keep: self-written prompts that read as real requests, no duplicates, and no prompt that
shares a word 8-gram with an excluded set (the evaluation prompts)."""

from __future__ import annotations

import re
from typing import Iterable, Sequence


def normalize(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: the key for exact deduplication."""
    return " ".join(re.sub(r"[^a-z0-9\s]", " ", text.lower()).split())


def word_ngrams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlapping(texts: Sequence[str], excluded: Iterable[str], n: int = 8) -> list[bool]:
    """For each text: does it share a word n-gram with any excluded text?"""
    banned: set[tuple[str, ...]] = set()
    for t in excluded:
        banned |= word_ngrams(t, n)
    return [bool(word_ngrams(t, n) & banned) for t in texts]


def acceptable_prompt(text: str, *, min_words: int = 4, max_words: int = 120) -> bool:
    """A self-written prompt worth answering: English-looking, of sensible length, no template debris."""
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return False
    if any(s in text for s in ("<|", "|>", "im_start", "im_end")):
        return False
    printable = sum(32 <= ord(c) < 127 or c in "\n\t" for c in text)
    return printable / max(len(text), 1) >= 0.97


def dedupe(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(text, source) pairs without exact duplicates (after `normalize`) or repeated 60-character openings."""
    seen, openings, out = set(), set(), []
    for text, source in items:
        key = normalize(text)
        opening = key[:60]
        if not key or key in seen or (len(key) > 60 and opening in openings):
            continue
        seen.add(key)
        openings.add(opening)
        out.append((text, source))
    return out
