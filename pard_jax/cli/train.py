"""Train a PARD draft from a config file, on one CPU or sharded over a TPU pod / GPU cluster.

    python train/train.py --config configs/train/smoke.yaml [key.sub=value ...]

Writes RUN_DIR/checkpoints (orbax: params, optimizer state, step, data iterator; resumed automatically),
RUN_DIR/metrics.jsonl (one object per logged step) and RUN_DIR/config.yaml. On several hosts run the same
command on every host with distributed.enabled=true (see docs/training.md).
"""

from __future__ import annotations

import argparse
import logging

from pard_jax.cli import run_cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a PARD draft model from a YAML config.")
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/train/smoke.yaml")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. run_dir=/tmp/run train.steps=10")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notices are not for the person at the terminal

    def body():
        from pard_jax.training.config import load_train_config
        from pard_jax.training.trainer import run

        run(load_train_config(args.config, args.overrides))

    return run_cli(body)
