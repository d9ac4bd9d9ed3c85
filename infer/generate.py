"""Generate text with plain (ar), vanilla speculative (sd) or PARD decoding: see README, Generating.

Thin wrapper of `pard_jax.cli.generate` (installed as `pard-generate`); run it with --help for the options."""

import importlib.util
import os
import sys

if importlib.util.find_spec("pard_jax") is None:  # a checkout without an install: use its package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pard_jax.cli.generate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
