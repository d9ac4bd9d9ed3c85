"""Generate text with a target model: plain (ar), vanilla speculative (sd) or PARD (pard) decoding.

python infer/generate.py [--config CONFIG] [--target SPEC] [--draft SPEC] [--mode ar|sd|pard]
    [-k K] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--batch-size B]
    (--prompt TEXT | --prompts-file FILE) [--no-chat-template] [--json] [--compare-ar]
python infer/generate.py --config CONFIG --dry-run [--topology NAME | --platform cpu|gpu|tpu] [--prompt-len N]
    [--dry-run-layers N] [--no-fit]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from pard_jax import config_io, distributed
from pard_jax.cli import run_cli
from pard_jax.console import log
from pard_jax.errors import UserError
from pard_jax.models.kernels import PLATFORMS
from pard_jax.speculative import infer_dry_run
from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig
from pard_jax.speculative.loop import Mode
from pard_jax.speculative.prompts import read_prompts
from pard_jax.speculative.setup import build
from pard_jax.weights.tokenizer import encode_prompt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help="YAML inference config (default: the packaged one: PARD with the shipped draft)")
    p.add_argument("--target", help="target model SPEC: HF dir, .gguf file, hub id, or smollm2-135m-instruct")
    p.add_argument("--draft", help="draft model SPEC (modes sd and pard)")
    p.add_argument("--draft-layers", type=int, help="use only the draft's first N layers")
    p.add_argument("--mode", choices=[m.value for m in Mode])
    p.add_argument("-k", type=int, dest="k", help="draft tokens per iteration (1..32)")
    p.add_argument("--mask-token-id", type=int, help="PARD mask token id (default: the draft's pard_token)")
    p.add_argument("--pard2", choices=["auto", "td", "ti"],
                   help="a PARD-2 draft: td reads the target's hidden states (target-dependent), ti does not "
                        "(default auto: td when the draft has target_proj)")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--temperature", type=float, help="0 means greedy")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--dtype", choices=["float32", "bfloat16", "auto"],
                   help="weights and cache (default auto: bfloat16 on GPU/TPU, float32 on CPU)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt", help="one prompt")
    src.add_argument("--prompts-file", help="JSONL with a 'data' or 'prompt' field, or one prompt per line")
    p.add_argument("--no-chat-template", action="store_true", help="feed the prompt text as it is")
    p.add_argument("--json", action="store_true", help="one JSON object per prompt on stdout")
    p.add_argument("--compare-ar", action="store_true",
                   help="then time this mode and plain decoding (ar) on the same prompts, both warmed up, and report "
                        "the speedup and whether the text is identical")
    p.add_argument("--dry-run", action="store_true",
                   help="read no weights: compile the generation programs from the models' shapes and print memory, "
                        "FLOPs and the batch that fits each accelerator")
    p.add_argument("--prompt-len", type=int, default=512, help="with --dry-run: the prompt bucket (tokens) to compile for")
    p.add_argument("--platform", choices=PLATFORMS,
                   help="with --dry-run: compile the programs this platform runs (its kernels; default: this "
                        "machine's devices); the memory figures stay this machine's compiler's")
    p.add_argument("--dry-run-layers", type=int,
                   help="with --dry-run: compile target and draft with only their first N layers (a quick check)")
    p.add_argument("--topology", metavar="NAME",
                   help="with --dry-run: compile for the chips of this TPU slice (v5e-8, v5e-16, v6e-8, v5p-8, v4-16; "
                        "v5e-16x2: two slices) with the TPU compiler (the tpu extra), and print its memory per chip, "
                        "whether the programs fit and the largest batch that does")
    p.add_argument("--no-fit", action="store_true",
                   help="with --dry-run: compile once, without the second compile that measures the batch that fits")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = p.parse_args(argv)
    if not args.dry_run and args.prompt is None and args.prompts_file is None:
        p.error("one of the arguments --prompt --prompts-file is required")
    return args


def load_config(args):
    return config_io.load_config(InferConfig, args.config, config_io.overrides_from_args(args, InferConfig))


class Printer:
    """Streams one prompt's text to the terminal as tokens arrive (batch size 1), else prints whole texts."""

    def __init__(self, tokenizer, prompts, stream: bool):
        self.tok, self.prompts, self.stream = tokenizer, prompts, stream
        self.ids: dict[int, list[int]] = {}
        self.shown: dict[int, str] = {}

    def __call__(self, index: int, new_ids: list[int], finished: bool) -> None:
        ids = self.ids.setdefault(index, [])
        ids += new_ids
        if not self.stream and not finished:
            return
        if index not in self.shown:
            self.shown[index] = ""
            print(f"\n### prompt {index + 1}: {self.prompts[index][:70]!r}", flush=True)
        text = self.tok.decode(ids, skip_special_tokens=True)
        if not finished and text.endswith("\ufffd"):
            return  # wait for the rest of a multi-byte character
        print(text[len(self.shown[index]):], end="\n" if finished else "", flush=True)
        self.shown[index] = text


def timed_generate(gen, ids, seed, printer=None):
    """Results and the wall seconds they took, compilation excluded."""
    compile_before, t0 = gen.compile_seconds, time.perf_counter()
    results = gen.generate(ids, seed=seed, on_tokens=printer)
    return results, time.perf_counter() - t0 - (gen.compile_seconds - compile_before)


def print_summary(label, results, seconds, gen, out) -> float:
    """Print the one-line summary of a run; returns its tokens/s."""
    total = sum(r.num_generated for r in results)
    calls = sum(r.target_calls for r in results)
    speed = total / max(seconds, 1e-9)
    print(f"[{label}] {len(results)} prompt(s), {total} tokens, {speed:.1f} tokens/s, "
          f"mean accepted {total / max(calls, 1):.2f} per target call, "
          f"{gen.programs_compiled} program pair(s) compiled in {gen.compile_seconds:.1f}s", file=out, flush=True)
    return speed


def compare_with_ar(gen, ids, cfg, results, out, label: str, repeats: int = 2) -> None:
    """Decode the same prompts with plain decoding (same target and settings) and compare (`label`: the run's,
    e.g. "pard k=2 ti").

    Both decoders are warmed up, then timed alternately `repeats` times; the best time of each counts (the
    least disturbed by anything else on the machine). Silent runs make the same host round trips as a
    streamed one.
    """
    ar = gen.with_mode(Mode.AR)
    silent = (lambda *_: None) if gen.chunk_iterations else None
    log(f"timing {cfg.mode} and ar on the same prompt(s), best of {repeats} warm runs each ...")
    ar_results, _ = timed_generate(ar, ids, cfg.seed, silent)  # compiles and warms up ar
    spec_s, ar_s = float("inf"), float("inf")
    for _ in range(repeats):
        spec_s = min(spec_s, timed_generate(gen, ids, cfg.seed, silent)[1])
        ar_s = min(ar_s, timed_generate(ar, ids, cfg.seed, silent)[1])
    speed = print_summary(f"{label}, best warm run", results, spec_s, gen, out)
    ar_speed = print_summary("ar, best warm run", ar_results, ar_s, ar, out)
    same = sum(r.token_ids == a.token_ids for r, a in zip(results, ar_results))
    if cfg.temperature == 0:
        verdict = f"text identical to ar for {same} of {len(ids)} prompt(s)"
    else:
        verdict = "sampling: the text follows the same distribution as ar but differs draw by draw"
    print(f"{label} is {speed / max(ar_speed, 1e-9):.2f}x the speed of ar "
          f"({speed:.1f} vs {ar_speed:.1f} tokens/s); {verdict}", file=out, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: dry_run(args) if args.dry_run else generate(args))


def dry_run(args) -> int:
    result = infer_dry_run.dry_run(load_config(args), prompt_len=args.prompt_len, layers=args.dry_run_layers,
                                   fit=not args.no_fit, platform=args.platform, topology=args.topology)
    print(infer_dry_run.report(result, layers=args.dry_run_layers), flush=True)
    return 0 if result.verdict is None or result.verdict.fits else 1


def generate(args) -> int:
    cfg = load_config(args)
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts_file)
    if any(not p.strip() for p in prompts):
        raise UserError("a prompt is empty; give non-empty prompts")
    distributed.initialize(cfg.distributed)
    if not distributed.is_main():  # every process decodes every prompt; process 0 writes the output
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _generate(args, cfg, prompts)
    return _generate(args, cfg, prompts)


def _generate(args, cfg, prompts) -> int:
    pipeline = build(cfg)
    tok, gen = pipeline.tokenizer, pipeline.generator
    ids = [encode_prompt(tok, p, cfg.chat_template) for p in prompts]
    printer = None
    if not args.json:
        stream = sys.stdout.isatty() and cfg.batch_size == 1
        gen.chunk_iterations = cfg.stream_every if stream else 0
        printer = Printer(tok, prompts, stream)
    features = ("td" if gen.loop.target_dependent else "ti") if gen.loop.draft_cfg and gen.loop.draft_cfg.pard2 \
        and cfg.mode == "pard" else None
    label = f"{cfg.mode}" + (f" k={cfg.k}" if cfg.mode.uses_draft else "") + (f" {features}" if features else "")
    log(f"generating {len(prompts)} prompt(s), mode {cfg.mode}" + (f", k={cfg.k}" if cfg.mode.uses_draft else ""))
    results, seconds = timed_generate(gen, ids, cfg.seed, printer)
    for prompt, r in zip(prompts, results):
        if args.json:
            print(json.dumps({
                "prompt": prompt, "mode": cfg.mode, "k": gen.loop.k, "pard2": features,
                "text": tok.decode(r.token_ids, skip_special_tokens=True),
                "token_ids": r.token_ids, "num_generated": r.num_generated, "target_calls": r.target_calls,
                "mean_accepted": r.mean_accepted, "accept_rate_by_position": r.accept_rate_by_position,
                "tokens_per_second": r.tokens_per_second}), flush=True)
    out = sys.stderr if args.json else sys.stdout
    print_summary(label, results, seconds, gen, out)
    if args.compare_ar and cfg.mode.uses_draft:
        compare_with_ar(gen, ids, cfg, results, out, label)
    return 0
