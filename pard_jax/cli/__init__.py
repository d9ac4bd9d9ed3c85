"""The command-line programs. Each `main(argv=None) -> int` is a console script (pyproject.toml) and is what
the scripts under infer/ and train/ call."""

from __future__ import annotations

import sys
from typing import Callable

import jax

from pard_jax.errors import UserError
from pard_jax.weights.store import cache_root


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk (`$PARD_JAX_CACHE/xla`, default ~/.cache/pard_jax/xla) so that the next
    run of a program skips most of its compilation (SmolLM2's decode programs: about 7 s -> 3 s, the rest is
    tracing). JAX_COMPILATION_CACHE_DIR, when set, chooses another folder."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_root() / "xla"))


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a program's body: bad input (UserError) becomes one `error: ...` line on stderr and exit status 2,
    Ctrl-C exit status 130; otherwise the body's status (None means 0). Compiled programs are cached on disk."""
    enable_compilation_cache()
    try:
        return body() or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
