"""Choose a draft's sub-vocabulary (FR-Spec): the N ids its target writes most often in the distillation data.

    python train/choose_draft_vocab.py --data data/distill/smollm2 [--data MORE ...] --draft DRAFT_DIR
        [--size 8192] [--report 2048,4096,8192,16384]

Counts the answer tokens of the data (shards or {"prompt","response"} JSONL), holds out every 10th example
to report how much of unseen target text each size covers, and writes the chosen ids into DRAFT_DIR's
config.json as `draft_vocab` (EOS ids always included). Without --draft it only reports.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from pard_jax.cli import run_cli
from pard_jax.distill.vocab import coverage, frequent_ids, token_counts
from pard_jax.errors import UserError
from pard_jax.training.records import read_records, trained_ids
from pard_jax.weights.tokenizer import load_tokenizer


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, help="a data folder of shards, a shard or a .jsonl")
    ap.add_argument("--draft", help="a draft model directory whose config.json gets `draft_vocab`")
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--report", default="2048,4096,8192,16384")
    ap.add_argument("--target", default="smollm2-135m-instruct", help="for its tokenizer and EOS ids")
    return ap.parse_args(argv)


def config_json(cfg: dict) -> str:
    """config.json text, indented as transformers writes it, with the long `draft_vocab` list on one line."""
    rest = json.dumps({k: v for k, v in cfg.items() if k != "draft_vocab"}, indent=2)
    if "draft_vocab" not in cfg:
        return rest + "\n"
    return rest[:-2] + ',\n  "draft_vocab": ' + json.dumps(cfg["draft_vocab"]) + "\n}\n"


def main(argv=None) -> int:
    args = parse_args(argv)

    def body():
        tok = load_tokenizer(args.target)
        vocab = len(tok)
        answers = trained_ids(read_records(args.data), tok)
        train = token_counts((a for i, a in enumerate(answers) if i % 10), vocab)
        held = token_counts(answers[::10], vocab)
        always = [i for i in (tok.eos_token_id,) if i is not None]
        print(f"{len(answers)} answers, {int(train.sum() + held.sum())} tokens, {int((train > 0).sum())} distinct ids")
        for n in [int(x) for x in args.report.split(",") if x.strip()] + [args.size]:
            if 0 < n <= vocab:
                print(f"  N={n:6d}: covers {coverage(held, frequent_ids(train, n, always)):.2%} of held-out answer "
                      "tokens")
        if args.draft:
            path = os.path.join(args.draft, "config.json")
            if not os.path.isfile(path):
                raise UserError(f"{args.draft} has no config.json; pass a draft model directory")
            ids = frequent_ids(train + held, args.size, always)
            with open(path) as f:
                cfg = json.load(f)
            cfg["draft_vocab"] = [int(i) for i in np.asarray(ids)]
            with open(path, "w") as f:
                f.write(config_json(cfg))
            print(f"wrote draft_vocab ({len(ids)} ids) into {path}")

    return run_cli(body)
