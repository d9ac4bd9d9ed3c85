"""Prompt files for the inference programs: JSONL or one prompt per line."""

from __future__ import annotations

import json
import os

from pard_jax.errors import UserError


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
