"""Export a training checkpoint as an HF model directory: see docs/training.md, Export.

Thin wrapper of `pard_jax.cli.export` (installed as `pard-export`); run it with --help for the options."""

import importlib.util
import os
import sys

if importlib.util.find_spec("pard_jax") is None:  # a checkout without an install: use its package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pard_jax.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
