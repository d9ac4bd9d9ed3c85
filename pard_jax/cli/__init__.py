"""The command-line programs. Each `main(argv=None) -> int` is a console script (pyproject.toml) and is what
the scripts under infer/ and train/ call."""

from __future__ import annotations

import sys
from typing import Callable

from pard_jax.errors import UserError


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a program's body: bad input (UserError) becomes one `error: ...` line on stderr and exit status 2,
    Ctrl-C exit status 130; otherwise the body's status (None means 0)."""
    try:
        return body() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
