"""Benchmark: PARD training with COD against without COD (r = 1), same model, data and wall-clock budget.

    python bench/train_cod_throughput.py [--seconds 600] [--eval-every 120] [--out results.json]

Both runs start from the same random init (the smoke model at width 128, k = 8 by default) on the same synthetic chat
data and packed-row shape, on one device, alternating chunks of steps so that other load on the machine
hits both alike. Reported per run: throughput as real sequence positions per
second (block-0 tokens; the median of per-interval rates after compilation) and the per-block accuracy on a
held-out set (every block fully present, r = 1) after equal training wall-clock time (evaluation time
excluded). The goal: COD >= 2.3x the positions per second at equal or better per-block accuracy.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # a checkout without an install

import jax  # noqa: E402
import numpy as np  # noqa: E402

from pard_jax.training import pipeline, records, step, trainer  # noqa: E402
from pard_jax.training.config import load_train_config  # noqa: E402
from pard_jax.training.synthetic import write_jsonl  # noqa: E402


def eval_batches(cfg, tok, path: str, rows: int) -> list[dict]:
    """The held-out set with every block fully present, packed like training rows."""
    examples = pipeline.example_dataset(records.read_records([path]), tok, k=cfg.pard.k, r=1.0, r_min=1.0,
                                        mask_id=cfg.pard.mask_token_id, max_length=cfg.data.max_length, seed=0,
                                        epochs=1)
    it = pipeline.row_dataset(examples, row_length=cfg.data.row_length, rows_per_batch=rows,
                              pack_window=cfg.data.pack_window).__iter__()
    return [jax.tree.map(np.asarray, b) for b in it]


def evaluate(params, fn, batches, k: int) -> list[float]:
    """Per-block hit rate of `fn` (jitted `loss_sums`) over the held-out batches."""
    hits = np.zeros(k)
    counts = np.zeros(k)
    for b in batches:
        _, stats = fn(params, batch=b)
        hits += np.asarray(stats["correct_by_block"])
        counts += np.asarray(stats["count_by_block"])
    return (hits / np.maximum(counts, 1)).round(4).tolist()


class Run:
    """One training run whose clock advances only while it trains (compilation and evaluation excluded)."""

    def __init__(self, name: str, cfg, eval_set_path: str):
        self.name, self.cfg = name, cfg
        self.s = trainer.build_setup(cfg, devices=jax.devices()[:1])
        self.params, self.opt_state = trainer.initial_state(self.s)
        self.batches = pipeline.train_batches(cfg, self.s.model.tokenizer)
        held_out = eval_batches(cfg, self.s.model.tokenizer, eval_set_path, cfg.train.batch_size)
        eval_fn = jax.jit(functools.partial(step.loss_sums, cfg=self.s.model.cfg, k=cfg.pard.k))
        self.accuracy = functools.partial(evaluate, fn=eval_fn, batches=held_out, k=cfg.pard.k)
        self._step()  # compile outside the clock
        jax.block_until_ready(self.params)
        self.steps, self.trained, self.positions, self.kept = 1, 0.0, 0.0, 0.0
        self.rates: list[float] = []
        self.evals = [{"seconds": 0.0, "accuracy_by_block": self.accuracy(self.params)}]
        self.losses: list[float] = []

    def _step(self):
        self.params, self.opt_state, m = self.s.step_fn(self.params, self.opt_state,
                                                        trainer.global_batch(self.s, next(self.batches)))
        return m

    def train_chunk(self, steps: int) -> None:
        t0 = time.perf_counter()
        got = [step.host_metrics(m) for m in [self._step() for _ in range(steps)]]  # waits for the device
        interval = time.perf_counter() - t0
        self.steps += steps
        self.trained += interval
        pos = sum(g["positions"] for g in got)
        self.positions += pos
        self.kept += sum(g["kept"] for g in got)
        self.rates.append(pos / interval)
        self.losses.append(float(np.mean([g["loss"] for g in got])))

    def evaluate(self) -> None:
        self.evals.append({"seconds": round(self.trained, 1), "accuracy_by_block": self.accuracy(self.params),
                           "train_loss": self.losses[-1]})

    def summary(self) -> dict:
        return {"r": self.cfg.pard.r, "r_min": self.cfg.pard.r_min, "steps": self.steps,
                "train_seconds": round(self.trained, 1),
                "positions_per_second_median": statistics.median(self.rates),
                "positions_per_second_mean": self.positions / self.trained,
                "packed_tokens_per_second": self.kept / self.trained, "evals": self.evals}


def train_interleaved(runs: list[Run], seconds: float, eval_every: float, chunk: int) -> None:
    """Alternate chunks of steps between the runs (so background load hits both alike) until each has
    trained `seconds`; evaluate each whenever its own clock passes a multiple of `eval_every`."""
    next_eval = {r.name: eval_every for r in runs}
    while any(r.trained < seconds for r in runs):
        for r in runs:
            if r.trained >= seconds:
                continue
            r.train_chunk(chunk)
            if r.trained >= next_eval[r.name] or r.trained >= seconds:
                r.evaluate()
                next_eval[r.name] += eval_every


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.path.join(REPO, "configs", "train", "smoke.yaml"),
                   help="model and optimizer come from this config")
    p.add_argument("--seconds", type=float, default=600, help="training wall-clock per run")
    p.add_argument("--eval-every", type=float, default=120)
    p.add_argument("-k", type=int, default=8, help="k: blocks trained (K in the PARD paper)")
    p.add_argument("--r", type=float, default=0.7)
    p.add_argument("--r-min", type=float, default=0.2)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--row-length", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--chunk", type=int, default=4, help="steps per turn when alternating the two runs")
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument("overrides", nargs="*", help="extra key.sub=value config overrides for both runs")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="pard_bench_")
    train_path, eval_path = os.path.join(tmp, "train.jsonl"), os.path.join(tmp, "eval.jsonl")
    write_jsonl(train_path, 6000, seed=1, max_turns=4)
    write_jsonl(eval_path, 60, seed=2, max_turns=4)
    common = [f"run_dir={tmp}/run", f"data.paths=[{train_path}]", f"pard.k={args.k}",
              f"data.max_length={args.max_length}", f"data.row_length={args.row_length}", "data.pack_window=256",
              f"train.batch_size={args.batch_size}", "train.grad_accum=1", "optimizer.schedule=constant",
              "optimizer.warmup_steps=20", "checkpoint.every=0", "mesh.data=1", "mesh.fsdp=1", "mesh.tensor=1",
              f"model.hf_config.max_position_embeddings={max(args.row_length, args.max_length)}",
              # The smoke model, twice as wide: it leaves the unigram plateau within the first minutes on a CPU.
              "model.hf_config.hidden_size=128", "model.hf_config.intermediate_size=384", "model.hf_config.head_dim=32",
              "optimizer.learning_rate=3.0e-3", *args.overrides]
    runs = []
    for name, r, r_min in (("cod", args.r, args.r_min), ("no_cod", 1.0, 1.0)):
        cfg = load_train_config(args.config, common + [f"pard.r={r}", f"pard.r_min={r_min}"])
        runs.append(Run(name, cfg, eval_path))
    print(f"training both runs {args.seconds:.0f} s each, interleaved ...", file=sys.stderr, flush=True)
    train_interleaved(runs, args.seconds, args.eval_every, args.chunk)
    runs = {r.name: r.summary() for r in runs}
    cod, base = runs["cod"], runs["no_cod"]
    result = {
        "device": str(jax.devices()[0]), "jax": jax.__version__,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "overrides")},
        "runs": runs,
        "throughput_ratio_median": cod["positions_per_second_median"] / base["positions_per_second_median"],
        "throughput_ratio_mean": cod["positions_per_second_mean"] / base["positions_per_second_mean"],
    }
    print(json.dumps(result, indent=1))
    print(f"\npositions/s  COD {cod['positions_per_second_median']:.0f}  no-COD "
          f"{base['positions_per_second_median']:.0f}  ratio {result['throughput_ratio_median']:.2f}x "
          f"(mean-based {result['throughput_ratio_mean']:.2f}x)")
    print("held-out accuracy by block after equal training time:")
    for ec, eb in zip(cod["evals"], base["evals"]):
        print(f"  t={ec['seconds']:>6}s COD {ec['accuracy_by_block']}\n  t={eb['seconds']:>6}s no  {eb['accuracy_by_block']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
