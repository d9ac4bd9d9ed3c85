"""Run by tests/test_train_multihost.py as one of two joined processes: `train_joined.py OVERRIDES...` trains
smoke.yaml with the overrides (among them the `distributed.*` keys) and prints one RESULT line: this process's
index, the process and device counts, and the losses it logged."""

import json
import os
import sys

import jax

from pard_jax.training.config import load_train_config
from pard_jax.training.trainer import run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

cfg = load_train_config(os.path.join(REPO, "configs/train/smoke.yaml"), sys.argv[1:])
logged = run(cfg, progress=False)
print("RESULT " + json.dumps({"process": jax.process_index(), "count": jax.process_count(),
                              "devices": jax.device_count(), "local": jax.local_device_count(),
                              "losses": [r["loss"] for r in logged]}))
