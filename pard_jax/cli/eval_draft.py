"""How often the target would accept a PARD draft's proposals, teacher-forced along the target's own greedy answers
to a prompt set: deterministic, in minutes, without timing noise (`pard_jax.training.draft_score`).

python train/eval_draft.py --prompts-file F [--prompts-file G ...] (--draft SPEC | --checkpoint RUN_DIR
    [--step S]) [-k 4] [--limit N] [--max-new-tokens 128] [--config CONFIG] [--target SPEC] [--draft-layers N]
    [--batch-size 8] [--no-chat-template] [--json FILE]

The target's answers (greedy, --max-new-tokens each) are generated once per prompt set and kept in the cache
folder ($PARD_JAX_CACHE/answers, default ~/.cache/pard_jax/answers), so later runs score other drafts at once.
Prints, per prompt set, how often proposal j alone is right and the tokens per target call that greedy PARD
would make at each k up to -k (the accepted proposals plus the target's own token; an estimate, see the module).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os

import numpy as np

from pard_jax.cli import run_cli
from pard_jax.config_io import load_config, overrides_from_args
from pard_jax.console import log
from pard_jax.errors import UserError
from pard_jax.speculative.assemble import check_shared_vocab, mask_id_of, target_dependent
from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig
from pard_jax.speculative.loop import Mode
from pard_jax.speculative.prompts import read_prompts
from pard_jax.speculative.setup import build
from pard_jax.training.draft_score import score
from pard_jax.training.export import load_checkpoint
from pard_jax.weights.sources import load_model
from pard_jax.weights.store import cache_root
from pard_jax.weights.tokenizer import encode_prompt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts-file", action="append", required=True, help="a prompt set (repeatable)")
    add_draft_args(p)
    p.add_argument("-k", type=int, default=4, help="proposals per draft call to score (default 4)")
    p.add_argument("--limit", type=int, help="use only the first N prompts of each set")
    p.add_argument("--max-new-tokens", type=int, default=128, help="length of the target's answers")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML inference config: the target, chat template")
    p.add_argument("--target")
    p.add_argument("--mask-token-id", type=int, help="default: the draft's pard_token")
    p.add_argument("--pard2", choices=["td", "ti"], default="td",
                   help="a PARD-2 draft: read the target's hidden states (td, the default) or not (ti)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per batch when generating the answers")
    p.add_argument("--no-chat-template", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def add_draft_args(p: argparse.ArgumentParser) -> None:
    """The draft to score: --draft SPEC [--draft-layers N] or --checkpoint RUN_DIR [--step S] (`load_draft`)."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--draft", help="a draft model: a local HF directory, a .gguf, a hub id or a packaged name")
    which.add_argument("--checkpoint", metavar="RUN_DIR", help="the run_dir of a training run")
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest complete one)")
    p.add_argument("--draft-layers", type=int, help="use only the draft's first N layers")


def check_draft_args(args) -> None:
    """Refuse --step without --checkpoint and --draft-layers with it."""
    if args.step is not None and args.checkpoint is None:
        raise UserError("--step goes with --checkpoint; drop it, or pass the run_dir with --checkpoint")
    if args.draft_layers is not None and args.checkpoint is not None:
        raise UserError("--draft-layers goes with --draft; a checkpoint is scored with the layers it was trained with")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return run_cli(lambda: evaluate(args))


def answers(generator, model: str, name: str, ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """The target's greedy answers to `ids` (`model`: its spec and dtype), from the cache folder when this exact
    request was made before."""
    key = hashlib.sha256(json.dumps([model, max_new_tokens, ids]).encode()).hexdigest()[:16]
    path = cache_root() / "answers" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as f:
            return [f[str(i)].tolist() for i in range(len(ids))]
    log(f"{name}: generating the target's greedy answers to {len(ids)} prompts (kept in {path.parent}) ...")
    results = generator.generate(ids)
    out = [r.token_ids for r in results]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{str(i): np.asarray(a, np.int32) for i, a in enumerate(out)})
    os.replace(tmp, path)
    return out


def load_draft(args, target_embed):
    """(config, params, description) of the draft to score."""
    if args.checkpoint is not None:
        cfg, params, _, step = load_checkpoint(args.checkpoint, args.step)
        return cfg, params, f"{args.checkpoint} step {step}"
    model = load_model(args.draft, num_layers=args.draft_layers, shared_embed=target_embed)
    return model.cfg, model.params, args.draft


def evaluate(args) -> int:
    if args.k < 1 or args.max_new_tokens < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("-k, --max-new-tokens, --batch-size and --limit must be positive")
    check_draft_args(args)
    sets = {os.path.splitext(os.path.basename(p))[0]: read_prompts(p)[:args.limit] for p in args.prompts_file}
    overrides = overrides_from_args(argparse.Namespace(target=args.target, no_chat_template=args.no_chat_template),
                                    InferConfig)
    cfg = load_config(InferConfig, args.config, overrides)
    cfg = dataclasses.replace(cfg, mode=Mode.AR, k=0, draft=None, draft_layers=None, batch_size=args.batch_size,
                              max_new_tokens=args.max_new_tokens, temperature=0.0)
    draft = load_draft(args, None) if args.checkpoint else None  # a bad run_dir fails before the target loads
    pipeline = build(cfg)
    draft_cfg, params, what = draft or load_draft(args, pipeline.generator.target_params["embed"])
    loop = pipeline.generator.loop
    check_shared_vocab(loop.target_cfg, draft_cfg, pipeline.tokenizer)
    mask_id = mask_id_of(draft_cfg, args.mask_token_id, pipeline.tokenizer, loop.eos_ids)
    td = draft_cfg.pard2 is not None and args.pard2 == "td"
    if td:  # the same checks generation makes
        target_dependent(dataclasses.replace(cfg, mode=Mode.PARD, pard2="td"), loop.target_cfg, draft_cfg)
    target = dict(target_params=pipeline.generator.target_params, target_cfg=loop.target_cfg) if td else {}
    what += " (target-dependent)" if td else ""
    figures = {"draft": what, "k": args.k, "max_new_tokens": args.max_new_tokens, "pard2": args.pard2 if
               draft_cfg.pard2 is not None else None, "sets": {}}
    for name, prompts in sets.items():
        ids = [encode_prompt(pipeline.tokenizer, p, cfg.chat_template) for p in prompts]
        outs = answers(pipeline.generator, f"{cfg.target} {cfg.dtype}", name, ids, args.max_new_tokens)
        a = score(params, draft_cfg, [p + o for p, o in zip(ids, outs)], [len(p) for p in ids], k=args.k,
                  mask_id=mask_id, **target)
        per_k = {j: a.tokens_per_call(j) for j in range(1, args.k + 1)}
        figures["sets"][name] = {"prompts": len(ids), "anchors": a.anchors, "accuracy": a.accuracy.round(4).tolist(),
                                 "tokens_per_call": per_k}
        print(f"{name} ({len(ids)} prompts, {a.anchors} answer tokens): proposal accuracy "
              + " ".join(f"{x:.3f}" for x in a.accuracy) + "; tokens per target call "
              + ", ".join(f"k={j} {t:.2f}" for j, t in per_k.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0
