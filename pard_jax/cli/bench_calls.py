"""Micro-benchmark: the cost of one AR step, one verify call, one draft call and a prefill, against the device's
memory-bandwidth roofline, and the PARD speedup those costs predict.

python infer/bench_calls.py [--target SPEC] [--draft SPEC] [--draft-layers N] [--mask-token-id N] [-k 4,8,12]
    [--repeats R] [--context N] [--prefill-tokens P] [--random-weights] [--dtype float32|bfloat16] [--peak-gbps G]
    [--out DIR]

Every cost is device time inside one jitted program, without Python dispatch: a model call is repeated R
times in a `lax.fori_loop` that carries its cache (so nothing is hoisted), on a cache filled to --context
tokens; a loop iteration (draft -> verify -> accept -> commit, or one plain AR iteration) is measured in
the real on-device loop as (time of N+20 iterations - time of N) / 20. "outside" is what an iteration costs
beyond its draft and verify calls (acceptance, commit, bookkeeping). Each figure is the minimum over several
rounds: the round least disturbed by other work on a shared machine.

--random-weights takes the models' shapes alone (a local config.json, a .gguf header, or the table of published
models in pard_jax/models/shapes.py, e.g. meta-llama/Llama-3.1-8B-Instruct) with random weights: nothing is
downloaded, so any accelerator can measure real shapes. Roofline: the bytes a call must read (the weights it
multiplies by and the KV cache it attends over) / its time, as a fraction of the device's peak memory bandwidth
(--peak-gbps, else the table in pard_jax/program_cost.py for a known GPU/TPU). The predicted PARD speedup for
a mean accepted length a (tokens per iteration) is a x AR iteration / PARD iteration at that k. --out DIR
writes what is printed (bench_calls.txt) and the figures (bench_calls.json) into DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import jax
import jax.numpy as jnp

from pard_jax.cli import run_cli
from pard_jax.cli.call_timing import (Call, cache_bytes_read, iteration_ms, per_call_ms, prefill_ms,
                                      weight_bytes_read)
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.models import decoder, layout
from pard_jax.models.cache import init_cache
from pard_jax.program_cost import accelerator_of
from pard_jax.speculative import steps
from pard_jax.speculative.assemble import decode_loop, with_stand_in_mask
from pard_jax.speculative.config import InferConfig
from pard_jax.speculative.generator import prompt_bucket
from pard_jax.speculative.loop import DecodeLoop, Mode
from pard_jax.weights.sources import load_model, model_shape

ACCEPTED = (2, 3, 4, 5, 6)  # mean accepted lengths the speedup is predicted for
LOOP_NEW_TOKENS = 400  # what the timed loops may generate: more than the 24 iterations they run
LOOP_PROMPT = 64  # prompt tokens of the timed loops


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="smollm2-135m-instruct")
    p.add_argument("--draft", default="smollm2-135m-pard", help="default: the draft this package ships")
    p.add_argument("--draft-layers", type=int, default=None, help="use only the draft's first N layers")
    p.add_argument("--mask-token-id", type=int, default=None, help="default: the draft's pard_token")
    p.add_argument("-k", default="4,8,12")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--context", type=int, default=200, help="cached tokens the timed calls attend to")
    p.add_argument("--prefill-tokens", type=int, default=512, help="prompt length of the prefill row (padded as "
                   "generation pads it: a power of two up to 512, then a multiple of 512)")
    p.add_argument("--random-weights", action="store_true", help="the models' shapes with random weights")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "auto"], default="auto",
                   help="weights and cache (auto: bfloat16 on GPU/TPU, float32 on CPU)")
    p.add_argument("--peak-gbps", type=float, help="the device's peak memory bandwidth, GB/s (default: the table)")
    p.add_argument("--out", help="also write what is printed (bench_calls.txt) and the figures (bench_calls.json) "
                   "into this folder")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: bench_calls(args))


def draft_lengths(args) -> list[int]:
    """The -k values, with the other counts checked."""
    try:
        ks = [int(x) for x in args.k.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"-k takes comma-separated integers, got {args.k!r}") from None
    if not ks or min(ks) < 1 or args.context < 1 or args.prefill_tokens < 1 or args.repeats < 1:
        raise UserError("-k, --context, --prefill-tokens and --repeats must be positive")
    return ks


@dataclasses.dataclass
class TargetDependent:  # a PARD-2 draft's extra figures at one k
    draft: Call  # the draft call reading the target's features
    verify: Call  # the verify call that also returns the feature layers
    ti_iteration_ms: float  # the same draft's loop iteration without features


@dataclasses.dataclass
class DraftLength:  # the figures of one k
    k: int
    verify: Call
    pard_draft: Call
    sd_draft: Call
    pard_iteration_ms: float  # target-dependent for a PARD-2 draft
    speedup: dict[int, float]  # predicted PARD speedup over ar at each mean accepted length
    td: TargetDependent | None = None


@dataclasses.dataclass
class Figures:
    ar: Call
    ar_iteration_ms: float
    prefill: Call
    prefill_tokens: int  # the padded prompt
    by_k: list[DraftLength]


def load_models(args, dtype):
    """(target, draft) as (cfg, per-layer params on the device): loaded, or random with the models' shapes."""
    if not args.random_weights:
        target = load_model(args.target, dtype=dtype)
        draft = load_model(args.draft, dtype=dtype, num_layers=args.draft_layers, shared_embed=target.params["embed"])
        return [(m.cfg, jax.device_put(layout.unstack_layers(m.params))) for m in (target, draft)]
    out = []
    for i, cfg in enumerate((model_shape(args.target), model_shape(args.draft, args.draft_layers))):
        init = jax.jit(lambda key, cfg=cfg: jax.tree.map(
            lambda a: a.astype(dtype), layout.unstack_layers(decoder.init_params(cfg, key))))
        out.append((cfg, init(jax.random.key(i))))
    return out


def loops(args, target, draft, ks) -> tuple[DecodeLoop, dict[int, DecodeLoop]]:
    """The ar loop and the PARD loop of each k (target-dependent for a PARD-2 draft), assembled as generation
    assembles them. No EOS ids: a timed loop never stops early."""
    c = InferConfig(target=args.target, draft=args.draft, draft_layers=args.draft_layers, mode=Mode.PARD,
                    mask_token_id=args.mask_token_id, max_new_tokens=LOOP_NEW_TOKENS, dtype=args.dtype)
    if args.random_weights:  # no trained mask token to find: the shape table's drafts have none
        c = with_stand_in_mask(c, draft)
    pard = {k: decode_loop(dataclasses.replace(c, k=k), target, draft, eos_ids=()) for k in ks}
    return decode_loop(dataclasses.replace(c, mode=Mode.AR), target, None, eos_ids=()), pard


def in_place(loop: DecodeLoop) -> DecodeLoop:
    """`loop` with no new tokens: its capacity(n) is what a call at context n needs (n, the widest write past)."""
    return dataclasses.replace(loop, max_new_tokens=0)


def draft_call(loop: DecodeLoop, seq, last, parallel: bool, features=None):
    """One draft call of `loop`'s k tokens: PARD's (`parallel`; reading a PARD-2 draft's `features`) or k
    autoregressive ones."""
    def call(params, cache):
        d = steps.draft(params, loop.draft_cfg, cache, seq, last, k=loop.k, parallel=parallel, mask_id=loop.mask_id,
                        vocab=loop.target_cfg.vocab_size, sp=loop.sampling, key=jax.random.key(0), dtype=loop.dtype,
                        kernels=loop.kernels, features=features)
        return d.tokens, d.cache
    return call


def measure(args, models, ar_loop: DecodeLoop, pard_loops: dict[int, DecodeLoop]) -> Figures:
    """Every figure: the calls at --context cached tokens, the loop iterations, and the prefill row."""
    (tc, tp), (dc, dp) = models
    dtype, n = ar_loop.dtype, args.context
    C = in_place(pard_loops[max(pard_loops)]).capacity(n)
    seq = jax.random.randint(jax.random.key(0), (1, C), 0, min(tc.vocab_size, 1000)).astype(jnp.int32)
    kernels = ar_loop.kernels
    prefill = jax.jit(lambda p, cfg, t: decoder.prefill(p, cfg, t, init_cache(cfg, 1, C, dtype), dtype=dtype,
                                                        kernels=kernels), static_argnums=1)
    tcache, dcache = prefill(tp, tc, seq[:, :n]), prefill(dp, dc, seq[:, :n])
    start, last = jnp.array([n], jnp.int32), jnp.array([n - 1], jnp.int32)
    t_bytes, d_bytes = weight_bytes_read(tp, tc) + cache_bytes_read(tc, C, dtype), \
        weight_bytes_read(dp, dc) + cache_bytes_read(dc, C, dtype)

    def verify(width, feature_layers=()):
        def call(params, c):
            logits, c, *feats = decoder.forward_cached(params, tc, seq[:, n:n + width], c, start, dtype=dtype,
                                                       kernels=kernels, feature_layers=feature_layers)
            used = sum(jnp.sum(f > 0) for f in feats)  # keeps the features in the program
            return jnp.argmax(logits, axis=-1) + used, c
        return call

    def timed(name, call, params, cache, bytes_read):
        return Call(name, per_call_ms(call, params, cache, args.repeats), bytes_read)

    ar = timed("AR step (target, 1 token)", verify(1), tp, tcache, t_bytes)
    ar_iter = iteration_ms(ar_loop, tp, None, seq[:, :LOOP_PROMPT])
    P = prompt_bucket(args.prefill_tokens, ar_loop.prefill_chunk)  # what generation pads such a prompt to
    prompt = jax.random.randint(jax.random.key(1), (1, P), 0, min(tc.vocab_size, 1000)).astype(jnp.int32)
    pre = Call(f"prefill ({P} tokens)", prefill_ms(in_place(ar_loop), tp, prompt),
               weight_bytes_read(tp, tc) + cache_bytes_read(tc, P, dtype))
    by_k = []
    for k, loop in pard_loops.items():
        v = timed(f"verify ({k + 1} tokens)", verify(k + 1), tp, tcache, t_bytes)
        pd = timed(f"PARD draft (k={k})", draft_call(loop, seq, last, True), dp, dcache, d_bytes)
        sd = timed(f"sd draft (k={k})", draft_call(loop, seq, last, False), dp, dcache, k * d_bytes)
        it = iteration_ms(loop, tp, dp, seq[:, :LOOP_PROMPT])
        td = None
        if loop.target_dependent:
            features = jnp.zeros((1, k + 1, dc.pard2.target_dim), dtype)
            ti = dataclasses.replace(loop, target_dependent=False)
            td = TargetDependent(
                timed(f"TD draft (k={k})", draft_call(loop, seq, last, True, features), dp, dcache, d_bytes),
                timed(f"verify+features ({k + 1})", verify(k + 1, loop.feature_layers), tp, tcache, t_bytes),
                iteration_ms(ti, tp, dp, seq[:, :LOOP_PROMPT]))
            pd.name = f"TI draft (k={k})"
        by_k.append(DraftLength(k, v, pd, sd, it, {a: a * ar_iter / it for a in ACCEPTED if a <= k + 1}, td))
    return Figures(ar, ar_iter, pre, P, by_k)


def report(args, f: Figures, models, device, peak: float | None) -> list[str]:
    """The figures as lines for a person."""
    (tc, _), (dc, _) = models

    def fmt(c: Call) -> str:
        roof = c.roofline(peak)
        return (f"{c.name:>24}: {c.ms:8.2f} ms = {c.ms / f.ar.ms:5.2f} AR steps, {c.bytes_read / 1e6:9.1f} MB read"
                + ("" if roof is None else f", {roof:6.1%} of the roofline"))

    where = (f"{device.device_kind} ({device.platform}), peak {peak / 1e9:.0f} GB/s" if peak
             else f"{device.device_kind} ({device.platform}), peak bandwidth unknown (pass --peak-gbps)")
    lines = [f"# bench_calls: target {args.target} ({tc.num_layers} layers), draft {args.draft} ({dc.num_layers} "
             f"layers), {args.dtype}, {'random' if args.random_weights else 'loaded'} weights, context "
             f"{args.context}; {where}",
             fmt(f.ar), f"{'AR loop iteration':>24}: {f.ar_iteration_ms:8.2f} ms (outside the model call "
             f"{f.ar_iteration_ms - f.ar.ms:5.2f} ms)",
             fmt(f.prefill) + f", {f.prefill_tokens / (f.prefill.ms / 1e3):.0f} tokens/s"]
    for r in f.by_k:
        verify, drafted = (r.td.verify, r.td.draft) if r.td else (r.verify, r.pard_draft)
        outside = r.pard_iteration_ms - verify.ms - drafted.ms
        lines += [fmt(r.verify), fmt(r.pard_draft), fmt(r.sd_draft)]
        if r.td:
            lines += [fmt(r.td.verify), fmt(r.td.draft),
                      f"{'PARD-2 TI iteration':>24}: {r.td.ti_iteration_ms:8.2f} ms"]
        lines += [f"{'PARD-2 TD iteration' if r.td else 'PARD iteration':>24}: {r.pard_iteration_ms:8.2f} ms "
                  f"(outside the two calls {outside:5.2f} ms); predicted speedup over ar at mean accepted "
                  + ", ".join(f"{a}: {s:.2f}x" for a, s in r.speedup.items())]
    return lines


def as_json(args, f: Figures, device, peak: float | None) -> dict:
    """The figures for bench_calls.json."""
    call = lambda c: dict(dataclasses.asdict(c), roofline=c.roofline(peak))  # noqa: E731
    return dict(device=device.device_kind, platform=device.platform, peak_bytes_per_s=peak, target=args.target,
                draft=args.draft, dtype=args.dtype, context=args.context, random_weights=args.random_weights,
                ar=call(f.ar), ar_iteration_ms=f.ar_iteration_ms, prefill=call(f.prefill),
                k=[dict(k=r.k, verify=call(r.verify), pard_draft=call(r.pard_draft), sd_draft=call(r.sd_draft),
                        pard_iteration_ms=r.pard_iteration_ms, predicted_speedup=r.speedup,
                        **({} if r.td is None else dict(td_draft=call(r.td.draft), verify_features=call(r.td.verify),
                                                        ti_iteration_ms=r.td.ti_iteration_ms)))
                   for r in f.by_k])


def write_out(folder: str, lines: list[str], figures: dict) -> None:  # --out
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "bench_calls.json"), "w") as f:
        json.dump(figures, f, indent=1)
    with open(os.path.join(folder, "bench_calls.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def bench_calls(args) -> None:
    ks = draft_lengths(args)
    args.dtype = jnp.dtype(dtype_of(args.dtype)).name  # "auto" resolved, for the report
    models = load_models(args, dtype_of(args.dtype))
    (tc, _), (dc, _) = models
    ar_loop, pard_loops = loops(args, tc, dc, ks)
    device = jax.devices()[0]
    accel = accelerator_of(device.device_kind)
    peak = args.peak_gbps * 1e9 if args.peak_gbps else (accel.bandwidth if accel else None)
    figures = measure(args, models, ar_loop, pard_loops)
    lines = report(args, figures, models, device, peak)
    print("\n".join(lines), flush=True)
    if args.out:
        write_out(args.out, lines, as_json(args, figures, device, peak))
