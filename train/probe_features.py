"""Probe whether the target's features can pay for a PARD-2 draft: see docs/training.md.

Thin wrapper of `pard_jax.cli.probe_features` (installed as `pard-probe-features`); run it with --help for the
options."""

import importlib.util
import os
import sys

if importlib.util.find_spec("pard_jax") is None:  # a checkout without an install: use its package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pard_jax.cli.probe_features import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
