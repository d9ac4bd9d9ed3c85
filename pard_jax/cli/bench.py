"""Benchmark: plain decoding against vanilla speculative (sd) and PARD decoding, side by side in one run.

python infer/bench.py --prompts-file F [--prompts-file G ...] --modes ar,sd,pard -k 4,8,12 --max-new-tokens N
    [--hf-baseline] [--hf-assisted] --out DIR [--config CONFIG] [--target SPEC] [--draft SPEC]
    [--draft-layers N] [--mask-token-id N] [--pard2 td,ti] [--limit N]

Writes DIR/results.json (rows per prompt set, mode and k), DIR/results.md and DIR/speedup.png. Timings are
medians over prompts of per-prompt tokens/s (batch size 1, greedy unless configured otherwise, prefill
included), compile time excluded and reported apart. Every decoder is compiled and warmed up first, then
each prompt runs through all of them in turn. Speedups compare against the `ar` row of the same prompt set.
With a PARD-2 draft, `--pard2 td,ti` gives PARD rows for both of its modes (target-dependent and -independent).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time

import jax
import numpy as np

from pard_jax.cli import run_cli
from pard_jax.config_io import load_config, overrides_from_args
from pard_jax.console import log
from pard_jax.errors import UserError
from pard_jax.speculative.assemble import target_dependent
from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig
from pard_jax.speculative.generator import Result
from pard_jax.speculative.loop import Mode
from pard_jax.speculative.prompts import read_prompts
from pard_jax.speculative.setup import build
from pard_jax.weights.export import export_hf
from pard_jax.weights.tokenizer import encode_prompt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts-file", action="append", required=True, help="a prompt set (repeatable)")
    p.add_argument("--modes", default="ar,sd,pard")
    p.add_argument("-k", dest="ks", default="4,8,12", help="comma-separated draft lengths")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--hf-baseline", action="store_true", help="add a transformers generate (greedy) row")
    p.add_argument("--hf-assisted", action="store_true",
                   help="add a transformers assisted-generation row with the same draft (slow on a CPU)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="YAML inference config (default: the packaged one)")
    p.add_argument("--target")
    p.add_argument("--draft")
    p.add_argument("--draft-layers", type=int)
    p.add_argument("--mask-token-id", type=int)
    p.add_argument("--pard2", dest="pard2_rows", help="a PARD-2 draft's PARD rows: td, ti or td,ti (default: the config's pard2)")
    p.add_argument("--limit", type=int, help="use only the first N prompts of each set")
    p.add_argument("--no-chat-template", action="store_true")
    return p.parse_args(argv)


@dataclasses.dataclass
class Row:
    prompt_set: str
    mode: str
    k: int
    mean_accepted: float | None  # None for transformers rows
    accept_rate_by_position: list
    tokens_per_second: float
    speedup_vs_ar: float | None  # None when the run has no ar row
    num_prompts: int
    identical_to_ar: float | None = None  # fraction of prompts whose tokens equal the ar row's
    compile_seconds: float = 0.0
    prefill_tokens_per_second: float | None = None  # medians per prompt; None for transformers rows
    decode_tokens_per_second: float | None = None
    pard2: str | None = None  # a PARD-2 draft's PARD rows: "td" (target-dependent) or "ti"

    @property
    def label(self) -> str:
        return f"{self.mode} {self.pard2}" if self.pard2 else self.mode


@dataclasses.dataclass
class Runner:
    """One row's decoder: `run(prompt_ids) -> Result`, its compile time, and the results so far."""

    mode: str
    k: int
    run: object
    compile_seconds: float = 0.0
    results: list = dataclasses.field(default_factory=list)
    pard2: str | None = None


def engine_runners(pipeline, modes, ks, max_new, prompt_ids, pard2=(None,)):
    """Our decoders, compiled and warmed up on the first prompt (outside the timed runs). `pard2`: the PARD
    rows' drafting, each of "td" / "ti" (a PARD-2 draft), or (None,): the pipeline's own."""
    gen0 = pipeline.generator
    runners = []
    for mode in modes:
        for k in (ks if mode.uses_draft else [0]):
            if mode.uses_draft and gen0.draft_params is None:
                continue
            for p2 in (pard2 if mode is Mode.PARD else (None,)):
                changes = {} if p2 is None else {"target_dependent": p2 == "td"}
                gen = gen0.with_mode(mode, k, max_new_tokens=max_new, **changes)
                gen.generate(prompt_ids[:1])
                runners.append(Runner(mode.value, k, lambda ids, gen=gen: gen.generate([ids])[0],
                                      gen.compile_seconds, pard2=p2))
    return runners


def hf_runners(pipeline, max_new, draft_k, prompt_ids, greedy=True, assisted=False):
    """transformers `generate` (greedy) and/or assisted generation with the same draft, warmed up."""
    # PyTorch and transformers' models take seconds to import and only these optional rows need them.
    import torch
    from transformers import AutoModelForCausalLM

    gen = pipeline.generator
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(jax_tree_to_np(gen.target_params), gen.loop.target_cfg, os.path.join(tmp, "t"))
        target = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "t"), dtype=torch.float32).eval()
        assistant = None
        if assisted and gen.draft_params is not None:
            export_hf(jax_tree_to_np(gen.draft_params), gen.loop.draft_cfg, os.path.join(tmp, "d"))
            assistant = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "d"), dtype=torch.float32).eval()
            assistant.generation_config.num_assistant_tokens = draft_k
            assistant.generation_config.num_assistant_tokens_schedule = "constant"
    eos = list(gen.loop.eos_ids) or None

    def make(extra):
        def run(ids):
            x = torch.tensor([ids])
            t0 = time.perf_counter()
            with torch.no_grad():
                out = target.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new,
                                      do_sample=False, eos_token_id=eos, pad_token_id=eos[0] if eos else 0,
                                      **extra)
            return Result(out[0, x.shape[1]:].tolist(), 0, [], time.perf_counter() - t0, prefill_seconds=0.0,
                          prompt_tokens=len(ids))  # transformers' prefill is not timed apart
        run(prompt_ids[0])
        return run

    runners = [Runner("hf_greedy", 0, make({}))] if greedy else []
    if assistant is not None:
        runners.append(Runner("hf_assisted", draft_k, make({"assistant_model": assistant})))
    return runners


def measure(name, runners, prompt_ids) -> list[Row]:
    """Every prompt through every runner in turn (so that a slow spell of the machine hits all rows alike)."""
    for i, ids in enumerate(prompt_ids):
        for r in runners:
            r.results.append(r.run(ids))
        log(f"  {name}: prompt {i + 1}/{len(prompt_ids)}")
    ar = next((r for r in runners if r.mode == "ar"), None)
    ar_tokens = [x.token_ids for x in ar.results] if ar else None
    rows = []
    for r in runners:
        tps = statistics.median(x.tokens_per_second for x in r.results)
        same = None if ar_tokens is None else statistics.mean(
            float(x.token_ids == t) for x, t in zip(r.results, ar_tokens))
        if r.mode.startswith("hf"):
            mean, accepted, prefill, decode = None, [], None, None
        else:
            calls = sum(x.target_calls for x in r.results)
            mean = sum(x.num_generated for x in r.results) / max(calls, 1)
            accepted = [sum(x.accepted_at[i] for x in r.results) / max(calls, 1) for i in range(r.k)]
            prefill = statistics.median(x.prefill_tokens_per_second for x in r.results)
            decode = statistics.median(x.decode_tokens_per_second for x in r.results)
        rows.append(Row(name, r.mode, r.k, mean, accepted, tps, None, len(r.results), same, r.compile_seconds,
                        prefill, decode, r.pard2))
        log(f"  {name:>12} {rows[-1].label:>11} k={r.k:<2} {tps:7.1f} tok/s"
            + ("" if mean is None else f"  mean accepted {mean:.2f}")
            + ("" if same is None else f"  identical to ar: {same:.0%}"))
    return rows


def jax_tree_to_np(tree):
    return jax.tree.map(lambda a: np.asarray(a, dtype=np.float32), tree)


def write_markdown(rows, path, meta):
    lines = [f"Machine: {meta['machine']}; {meta['max_new_tokens']} new tokens; target {meta['target']}; "
             f"draft {meta['draft']}; temperature {meta['temperature']}.", "",
             "Tokens/s is per prompt, prefill included; prefill and decode tokens/s split it (prompt tokens per "
             "second of prefill, generated tokens per second after it).", "",
             "| prompt set | mode | k | tokens/s (median) | speedup vs ar | mean accepted | identical to ar | "
             "accept rate by position | prefill tok/s | decode tok/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = " ".join(f"{a:.2f}" for a in r.accept_rate_by_position)
        same = "" if r.identical_to_ar is None else f"{r.identical_to_ar:.0%}"
        mean = "" if r.mean_accepted is None else f"{r.mean_accepted:.2f}"
        split = " | ".join("" if v is None else f"{v:.1f}"
                           for v in (r.prefill_tokens_per_second, r.decode_tokens_per_second))
        lines.append(f"| {r.prompt_set} | {r.label} | {r.k or ''} | {r.tokens_per_second:.1f} | "
                     f"{'' if r.speedup_vs_ar is None else f'{r.speedup_vs_ar:.2f}x'} | {mean} | {same} | {acc} | "
                     f"{split} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(rows, path):
    # matplotlib takes a while to import and only the plot needs it; its backend is chosen before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r.prompt_set for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for s in sets:
        here = [r for r in rows if r.prompt_set == s]
        drafted = sorted({r.label for r in here if r.mode in ("pard", "sd")})
        for label in drafted:
            pts = sorted((r.k, r.speedup_vs_ar) for r in here if r.label == label and r.speedup_vs_ar is not None)
            if pts:
                axes[0].plot(*zip(*pts), "-o" if label.startswith("pard") else "--s", label=f"{label} ({s})")
        hf = next((r for r in here if r.mode == "hf_greedy" and r.speedup_vs_ar), None)
        if hf is not None:
            axes[0].axhline(hf.speedup_vs_ar, ls=":", color=axes[0].lines[-1].get_color() if axes[0].lines else None,
                            lw=1, label=f"hf_greedy ({s})")
        for label in (x for x in drafted if x.startswith("pard")):  # the largest k shows the most positions
            widest = max((r for r in here if r.label == label), key=lambda r: r.k)
            axes[1].plot(range(1, widest.k + 1), widest.accept_rate_by_position, "-o",
                         label=f"{label} k={widest.k} ({s})")
    axes[0].axhline(1.0, color="gray", lw=0.8)
    axes[0].set(xlabel="k (draft tokens per iteration)", ylabel="speedup vs ar (tokens/s)",
                title="Speedup over plain decoding")
    axes[1].set(xlabel="draft position", ylabel="acceptance rate", title="Acceptance by draft position",
                ylim=(0, 1.05))
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: bench(args))


def bench(args) -> int:
    modes = [Mode.parse(m.strip()) for m in args.modes.split(",") if m.strip()]
    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        raise UserError(f"-k takes comma-separated integers, got {args.ks!r}") from None
    cfg = load_config(InferConfig, args.config, overrides_from_args(args, InferConfig))
    mode = Mode.PARD if Mode.PARD in modes else (Mode.SD if any(m.uses_draft for m in modes) else Mode.AR)
    cfg = dataclasses.replace(cfg, mode=mode, k=max(ks), batch_size=1)
    pard2 = [x.strip() for x in args.pard2_rows.split(",") if x.strip()] if args.pard2_rows else [None]
    if any(x not in ("td", "ti", None) for x in pard2) or len(set(pard2)) < len(pard2):
        raise UserError(f"--pard2 takes td, ti or td,ti, got {args.pard2_rows!r}")
    sets = {}
    for path in args.prompts_file:
        name = os.path.splitext(os.path.basename(path))[0]
        sets[name] = read_prompts(path)[:args.limit]
    pipeline = build(cfg)
    if "td" in pard2:  # the checks a --pard2 td run makes, before any prompt runs
        loop = pipeline.generator.loop
        target_dependent(dataclasses.replace(cfg, mode=Mode.PARD, pard2="td"), loop.target_cfg, loop.draft_cfg)
    os.makedirs(args.out, exist_ok=True)
    rows: list[Row] = []
    for name, prompts in sets.items():
        ids = [encode_prompt(pipeline.tokenizer, p, cfg.chat_template) for p in prompts]
        log(f"prompt set {name}: {len(ids)} prompts")
        runners = engine_runners(pipeline, modes, ks, args.max_new_tokens, ids, pard2)
        if args.hf_baseline or args.hf_assisted:
            runners += hf_runners(pipeline, args.max_new_tokens, 8 if 8 in ks else max(ks), ids,
                                  greedy=args.hf_baseline, assisted=args.hf_assisted)
        set_rows = measure(name, runners, ids)
        ar = next((r for r in set_rows if r.mode == "ar"), None)
        for r in set_rows:
            r.speedup_vs_ar = r.tokens_per_second / ar.tokens_per_second if ar else None
        rows += set_rows
    meta = {"machine": f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on "
                       f"{jax.default_backend()}", "max_new_tokens": args.max_new_tokens, "target": cfg.target,
            "draft": f"{cfg.draft}" + (f" (first {cfg.draft_layers} layers)" if cfg.draft_layers else ""),
            "temperature": cfg.temperature}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": [dataclasses.asdict(r) for r in rows]}, f, indent=1)
    write_markdown(rows, os.path.join(args.out, "results.md"), meta)
    plot(rows, os.path.join(args.out, "speedup.png"))
    log(f"wrote {args.out}/results.json, results.md, speedup.png")
    print(open(os.path.join(args.out, "results.md")).read())
    return 0
