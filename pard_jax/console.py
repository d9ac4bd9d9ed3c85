"""The programs' progress notes: one line on stderr each, so that stdout stays data (texts, JSON, tables)."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
