"""Train a PARD draft from a config file, on one CPU or sharded over a TPU pod / GPU cluster.

    python train/train.py --config configs/train/smoke.yaml [--dry-run [--topology NAME]] [key.sub=value ...]

Writes RUN_DIR/checkpoints (orbax: params, optimizer state, step, data iterator; resumed automatically),
RUN_DIR/metrics.jsonl (one object per logged step) and RUN_DIR/config.yaml. On several hosts run the same
command on every host with distributed.enabled=true (see docs/training.md). `--dry-run` reads no weights or
data: it compiles the training step for the configured mesh and prints memory per device, FLOPs per step and
the batch that fits each accelerator (simulate devices with XLA_FLAGS=--xla_force_host_platform_device_count=N).
"""

from __future__ import annotations

import argparse
import logging

from pard_jax.cli import run_cli
from pard_jax.training import train_dry_run
from pard_jax.training.config import load_train_config
from pard_jax.training.trainer import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a PARD draft model from a YAML config.")
    p.add_argument("--config", required=True, help="YAML config, e.g. configs/train/smoke.yaml")
    p.add_argument("--dry-run", action="store_true",
                   help="read no weights or data: compile the step for the configured mesh and print memory per "
                        "device, FLOPs and the batch that fits each accelerator")
    p.add_argument("--topology", metavar="NAME",
                   help="with --dry-run: compile for the chips of this TPU slice (v5e-16, v5p-8, v6e-8, v4-16; "
                        "v5e-16x2: two slices) with the TPU compiler (the tpu extra), and print its memory per chip, "
                        "whether the step fits and the largest batch that does")
    p.add_argument("--no-fit", action="store_true",
                   help="with --dry-run: compile once, without the second compile that measures the batch that fits")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. run_dir=/tmp/run train.steps=10")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notices are not for the person at the terminal

    def body():
        cfg = load_train_config(args.config, args.overrides)
        if args.dry_run:
            result = train_dry_run.dry_run(cfg, fit=not args.no_fit, topology=args.topology)
            print(train_dry_run.report(result), flush=True)
            return 0 if result.verdict is None or result.verdict.fits else 1
        run(cfg)

    return run_cli(body)
