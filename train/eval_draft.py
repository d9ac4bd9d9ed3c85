"""Score a PARD draft by teacher-forced acceptance on a prompt set: see docs/training.md.

Thin wrapper of `pard_jax.cli.eval_draft` (installed as `pard-eval-draft`); run it with --help for the options."""

import importlib.util
import os
import sys

if importlib.util.find_spec("pard_jax") is None:  # a checkout without an install: use its package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pard_jax.cli.eval_draft import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
