"""Choose a draft's sub-vocabulary from the distillation data: see README.

Thin wrapper of `pard_jax.cli.draft_vocab`; run it with --help for the options."""

import importlib.util
import os
import sys

if importlib.util.find_spec("pard_jax") is None:  # a checkout without an install: use its package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pard_jax.cli.draft_vocab import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
