"""Whether the target's features can pay for a PARD-2 draft: a linear probe on training data, in minutes
(`pard_jax.training.feature_probe`).

python train/probe_features.py --data PATH [--data PATH ...]
    (--draft SPEC [--draft-layers N] | --checkpoint RUN_DIR [--step S])
    [--target SPEC] [--layers=-1,-8,-16,-24] [--sequences 400] [--length 256] [--steps 400] [--lr 3e-5]
    [--lr-alone 3e-4] [--json FILE]

--data takes what a training config's data.paths takes (distillation shard folders, .jsonl, text). The last fifth
of the sequences is held out. Prints the draft's own next-token accuracy at the answer tokens (target-independent),
with the features added through a fitted linear map, and from the features alone, each on the held-out sequences
(at the probe's best step, so slightly optimistic).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from pard_jax.cli import run_cli
from pard_jax.cli.eval_draft import add_draft_args, check_draft_args, load_draft
from pard_jax.console import log
from pard_jax.errors import UserError
from pard_jax.models.config import missing_hidden_states
from pard_jax.models.decoder import head_of
from pard_jax.speculative.assemble import check_shared_vocab
from pard_jax.training import feature_probe
from pard_jax.training.records import encode_record, read_records
from pard_jax.weights.sources import SMOLLM2_ALIAS, load_model
from pard_jax.weights.tokenizer import load_tokenizer

DEFAULT_LAYERS = (-1, -8, -16, -24)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", action="append", required=True, help="training data: a shard folder or file (repeatable)")
    add_draft_args(p)
    p.add_argument("--target", default=SMOLLM2_ALIAS, help=f"the target model (default {SMOLLM2_ALIAS})")
    p.add_argument("--layers", help="the target's hidden states, transformers' indices (default: the draft's "
                   "pard2_target_layers, else -1,-8,-16,-24; write --layers=-1,-8 for negative indices)")
    p.add_argument("--sequences", type=int, default=400, help="sequences to probe (default 400)")
    p.add_argument("--length", type=int, default=256, help="tokens per sequence at most (default 256)")
    p.add_argument("--steps", type=int, default=400, help="Adam steps of each fit (default 400)")
    p.add_argument("--lr", type=float, default=3e-5,
                   help="Adam's rate for the fit beside the draft (default 3e-5: at 3e-4 and 1e-4 its first steps add "
                   "more noise than signal to the draft's logits, and held-out accuracy falls below the draft's own)")
    p.add_argument("--lr-alone", type=float, default=3e-4,
                   help="Adam's rate for the fit of the features alone, which starts from nothing (default 3e-4)")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return run_cli(lambda: probe(args))


def probe(args) -> int:
    if min(args.sequences, args.length, args.steps) < 1 or min(args.lr, args.lr_alone) <= 0:
        raise UserError("--sequences, --length, --steps, --lr and --lr-alone must be positive")
    if args.sequences < 5:
        raise UserError("--sequences must be at least 5: a fifth of them is held out")
    check_draft_args(args)
    records = read_records(args.data)  # bad paths fail before any model loads
    target = load_model(args.target)
    draft_cfg, draft_params, what = load_draft(args, target.params["embed"])
    if args.layers:
        try:
            layers = tuple(int(x) for x in args.layers.split(","))
        except ValueError:
            raise UserError(f"--layers takes comma-separated integers, e.g. -1,-8,-16,-24; got {args.layers!r}")
    else:
        layers = tuple(draft_cfg.pard2.target_layers) if draft_cfg.pard2 is not None else DEFAULT_LAYERS
    n = target.cfg.num_layers
    if missing_hidden_states(layers, n):
        raise UserError(f"--layers {list(layers)}: the {n}-layer target's hidden states are -{n + 1}..{n}")
    tok = load_tokenizer(target.tokenizer_source)
    check_shared_vocab(target.cfg, draft_cfg, tok)
    sequences, scored = [], []
    for rec in records:
        e = encode_record(rec, tok, chat_template=True, train_on_prompt=False, max_length=args.length)
        if e["targets"][2:].any():
            sequences.append(e["ids"]), scored.append(e["targets"])
        if len(sequences) == args.sequences:
            break
    if len(sequences) < 5:
        raise UserError(f"the data gave {len(sequences)} sequences with answer tokens; the probe needs at least 5")
    log(f"probing {what} against {args.target} features {list(layers)} on {len(sequences)} sequences ...")
    data = feature_probe.collect(draft_params, draft_cfg, target.params, target.cfg, sequences, scored, layers)
    head = np.asarray(head_of(draft_params, draft_cfg))
    train, held = feature_probe.split(data)
    zero = np.zeros((data.features.shape[1], data.hidden.shape[1]), np.float32)
    alone = feature_probe.accuracy(data, head, zero, held)
    _, fused = feature_probe.fit(data, head, train, held, steps=args.steps, lr=args.lr)
    _, feats = feature_probe.fit(data, head, train, held, use_draft=False, steps=args.steps, lr=args.lr_alone)
    best = lambda curve: max(a for _, a in curve)  # noqa: E731
    figures = {"draft": what, "target": args.target, "layers": list(layers), "sequences": len(sequences),
               "train_positions": len(train), "held_out_positions": len(held), "draft_alone": alone,
               "draft_plus_features": best(fused), "features_alone": best(feats),
               "curves": {"draft_plus_features": fused, "features_alone": feats}}
    print(f"held-out next-token accuracy at {len(held)} answer positions ({len(train)} fitted): draft alone "
          f"{alone:.3f}, draft + features {best(fused):.3f} ({best(fused) - alone:+.3f}), features alone "
          f"{best(feats):.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0
