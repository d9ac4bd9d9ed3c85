"""Micro-benchmark: the cost of one AR step, one verify call, one draft call and a prefill, against the device's
memory-bandwidth roofline, and the PARD speedup those costs predict.

python infer/bench_calls.py [--target SPEC] [--draft SPEC] [--draft-layers N] [-k 4,8,12] [--repeats R]
    [--context N] [--prefill-tokens P] [--random-weights] [--dtype float32|bfloat16] [--peak-gbps G] [--out DIR]

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
import time

import jax
import jax.numpy as jnp

from pard_jax.cli import run_cli

ACCEPTED = (2, 3, 4, 5, 6)  # mean accepted lengths the speedup is predicted for


def per_call_ms(call, params, cache, repeats: int) -> float:
    """Device time of one `call(params, cache) -> (tokens, cache)`, from a fori_loop of `repeats` calls.

    The parameters are arguments of the program (not constants folded into it); the tokens are summed into the
    carry so that the compiler cannot drop the logits' computation.
    """
    def body(params, i, carry):
        cache, total = carry
        tokens, cache = call(params, cache)
        return cache, total + jnp.sum(tokens)

    loop = jax.jit(lambda p, c: jax.lax.fori_loop(0, repeats, lambda i, x: body(p, i, x), (c, jnp.zeros((), jnp.int32))))
    return best_ms(lambda: loop(params, cache), rounds=7) / repeats


def best_ms(run, rounds: int) -> float:
    """The fastest of `rounds` timed calls of `run()` (after one warm-up call), in ms."""
    jax.block_until_ready(run())
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def iteration_ms(loop, target_params, draft_params, prompt) -> float:
    from pard_jax.speculative.generator import PRNG_IMPL
    from pard_jax.speculative.loop import run_jit, start_jit

    plen, done = jnp.array([prompt.shape[1]], jnp.int32), jnp.array([False])

    def run(count):
        s = start_jit(loop, target_params, draft_params, prompt, plen, done, jax.random.key(0, impl=PRNG_IMPL))
        jax.block_until_ready(s)
        t0 = time.perf_counter()
        jax.block_until_ready(run_jit(loop, target_params, draft_params, s, jnp.int32(count)))
        return time.perf_counter() - t0

    run(2)
    few = min(run(4) for _ in range(5))
    many = min(run(24) for _ in range(5))
    return (many - few) / 20 * 1e3


def prefill_ms(params, cfg, tokens, capacity: int, dtype) -> float:
    """Device time of writing a [1, P] prompt into a fresh cache as generation does (chunk by chunk; the best
    of 5, after a warm-up)."""
    from pard_jax.models import decoder, layout
    from pard_jax.models.cache import init_cache
    from pard_jax.speculative.loop import PREFILL_CHUNK

    run = jax.jit(lambda p, t: decoder.prefill(p, cfg, t, init_cache(cfg, 1, capacity, dtype), chunk=PREFILL_CHUNK,
                                                 dtype=dtype))
    return best_ms(lambda: run(params, tokens), rounds=5)


def weight_bytes_read(params, cfg) -> int:
    """Bytes of weights one forward call multiplies by: all of them, except an untied input table (a lookup)."""
    from pard_jax.program_cost import per_device_bytes

    total = per_device_bytes(params)
    if not cfg.tie_word_embeddings and cfg.draft_vocab is None:
        total -= per_device_bytes(params["embed"])
    return total


def cache_bytes_read(cfg, capacity: int, dtype) -> int:
    """Bytes of one row's KV cache a call attends over (every entry of its capacity, masked or not)."""
    from pard_jax.models.cache import bytes_per_position

    return capacity * bytes_per_position(cfg, dtype)


@dataclasses.dataclass
class Call:
    name: str
    ms: float
    bytes_read: int

    def roofline(self, peak: float | None) -> float | None:
        return None if not peak else self.bytes_read / (self.ms / 1e3) / peak


def load_models(args, dtype):
    """(target, draft) as (cfg, per-layer params on the device): loaded, or random with the models' shapes."""
    from pard_jax.models import decoder, layout

    if not args.random_weights:
        from pard_jax.weights.sources import load_model

        target = load_model(args.target, dtype=dtype)
        draft = load_model(args.draft, dtype=dtype, num_layers=args.draft_layers, shared_embed=target.params["embed"])
        return [(m.cfg, jax.device_put(layout.unstack_layers(m.params))) for m in (target, draft)]
    from pard_jax.weights.sources import model_shape

    out = []
    for i, cfg in enumerate((model_shape(args.target), model_shape(args.draft, args.draft_layers))):
        init = jax.jit(lambda key, cfg=cfg: jax.tree.map(
            lambda a: a.astype(dtype), layout.unstack_layers(decoder.init_params(cfg, key))))
        out.append((cfg, init(jax.random.key(i))))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="smollm2-135m-instruct")
    p.add_argument("--draft", default="smollm2-135m-instruct")
    p.add_argument("--draft-layers", type=int, default=None,
                   help="use only the draft's first N layers (default: 4 of a loaded SmolLM2 draft, else all)")
    p.add_argument("--mask-token-id", type=int, default=None, help="default: the draft's pard_token, else 16")
    p.add_argument("-k", default="4,8,12")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--context", type=int, default=200, help="cached tokens the timed calls attend to")
    p.add_argument("--prefill-tokens", type=int, default=512, help="prompt length of the prefill row (padded as "
                   "generation pads it: a power of two up to 512, then a multiple of 512)")
    p.add_argument("--random-weights", action="store_true", help="the models' shapes with random weights")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "auto"], default="auto",
                   help="weights and cache (auto: bfloat16 on GPU/TPU, float32 on CPU)")
    p.add_argument("--peak-gbps", type=float, help="the device's peak memory bandwidth, GB/s (default: the table)")
    p.add_argument("--out", help="also write results.json and results.md into this folder")
    args = p.parse_args(argv)
    return run_cli(lambda: bench_calls(args))


def bench_calls(args) -> None:
    from pard_jax.dtypes import dtype_of
    from pard_jax.errors import UserError
    from pard_jax.models import decoder, layout
    from pard_jax.models.cache import init_cache
    from pard_jax.program_cost import accelerator_of
    from pard_jax.speculative import steps
    from pard_jax.speculative.loop import DecodeLoop, Mode
    from pard_jax.speculative.sampling import SamplingParams

    try:
        ks = [int(x) for x in args.k.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"-k takes comma-separated integers, got {args.k!r}") from None
    if not ks or min(ks) < 1 or args.context < 1 or args.prefill_tokens < 1 or args.repeats < 1:
        raise UserError("-k, --context, --prefill-tokens and --repeats must be positive")
    if args.draft_layers is None and not args.random_weights and args.draft == "smollm2-135m-instruct":
        args.draft_layers = 4
    dtype = dtype_of(args.dtype)
    args.dtype = jnp.dtype(dtype).name  # "auto" resolved, for the report
    (tc, tp), (dc, dp) = load_models(args, dtype)
    mask_id = next(m for m in (args.mask_token_id, dc.pard_token, 16) if m is not None)
    device = jax.devices()[0]
    accel = accelerator_of(device.device_kind)
    peak = args.peak_gbps * 1e9 if args.peak_gbps else (accel.bandwidth if accel else None)
    n, C = args.context, -(-(args.context + 2 * max(ks) + 2) // 64) * 64
    seq = jax.random.randint(jax.random.key(0), (1, C), 0, min(tc.vocab_size, 1000)).astype(jnp.int32)
    prefill = jax.jit(lambda p, cfg, t: decoder.prefill(p, cfg, t, init_cache(cfg, 1, C, dtype), dtype=dtype),
                      static_argnums=1)
    tcache, dcache = prefill(tp, tc, seq[:, :n]), prefill(dp, dc, seq[:, :n])
    start, last = jnp.array([n], jnp.int32), jnp.array([n - 1], jnp.int32)
    greedy = SamplingParams()
    t_bytes, d_bytes = weight_bytes_read(tp, tc), weight_bytes_read(dp, dc)
    t_cache, d_cache = cache_bytes_read(tc, C, dtype), cache_bytes_read(dc, C, dtype)

    def verify(width):
        def call(params, c):
            logits, c = decoder.forward_cached(params, tc, seq[:, n:n + width], c, start, dtype=dtype)
            return jnp.argmax(logits, axis=-1), c
        return call

    def draft_call(k, parallel):
        def call(params, c):
            fn = steps.pard_draft if parallel else steps.ar_draft
            kw = dict(mask_id=mask_id) if parallel else {}
            d = fn(params, dc, c, seq, last, k=k, vocab=tc.vocab_size, sp=greedy, key=jax.random.key(0), dtype=dtype,
                   **kw)
            return d.tokens, d.cache
        return call

    ar = Call("AR step (target, 1 token)", per_call_ms(verify(1), tp, tcache, args.repeats), t_bytes + t_cache)
    ar_iter = iteration_ms(DecodeLoop(tc, max_new_tokens=400, dtype=dtype), tp, None, seq[:, :64])
    from pard_jax.speculative.generator import prompt_bucket
    from pard_jax.speculative.loop import PREFILL_CHUNK

    P = prompt_bucket(args.prefill_tokens, PREFILL_CHUNK)  # what generation pads such a prompt to
    prefill_tokens = jax.random.randint(jax.random.key(1), (1, P), 0, min(tc.vocab_size, 1000)).astype(jnp.int32)
    pre = Call(f"prefill ({P} tokens)", prefill_ms(tp, tc, prefill_tokens, -(-(P + 64) // 64) * 64, dtype),
               t_bytes + cache_bytes_read(tc, P, dtype))
    rows = []
    for k in ks:
        v = Call(f"verify ({k + 1} tokens)", per_call_ms(verify(k + 1), tp, tcache, args.repeats), t_bytes + t_cache)
        pd = Call(f"PARD draft (k={k})", per_call_ms(draft_call(k, True), dp, dcache, args.repeats), d_bytes + d_cache)
        sd = Call(f"sd draft (k={k})", per_call_ms(draft_call(k, False), dp, dcache, args.repeats),
                  k * (d_bytes + d_cache))
        loop = DecodeLoop(tc, mode=Mode.PARD, k=k, draft_cfg=dc, mask_id=mask_id, max_new_tokens=400, dtype=dtype)
        it = iteration_ms(loop, tp, dp, seq[:, :64])
        speedup = {a: a * ar_iter / it for a in ACCEPTED if a <= k + 1}
        rows.append(dict(k=k, verify=v, pard_draft=pd, sd_draft=sd, pard_iteration_ms=it, speedup=speedup))

    def fmt(c: Call) -> str:
        roof = c.roofline(peak)
        return (f"{c.name:>24}: {c.ms:8.2f} ms = {c.ms / ar.ms:5.2f} AR steps, {c.bytes_read / 1e6:9.1f} MB read"
                + ("" if roof is None else f", {roof:6.1%} of the roofline"))

    where = (f"{device.device_kind} ({device.platform}), peak {peak / 1e9:.0f} GB/s" if peak
             else f"{device.device_kind} ({device.platform}), peak bandwidth unknown (pass --peak-gbps)")
    lines = [f"# bench_calls: target {args.target} ({tc.num_layers} layers), draft {args.draft} ({dc.num_layers} "
             f"layers), {args.dtype}, {'random' if args.random_weights else 'loaded'} weights, context {n}; {where}",
             fmt(ar), f"{'AR loop iteration':>24}: {ar_iter:8.2f} ms (outside the model call "
             f"{ar_iter - ar.ms:5.2f} ms)", fmt(pre) + f", {P / (pre.ms / 1e3):.0f} tokens/s"]
    for r in rows:
        outside = r["pard_iteration_ms"] - r["verify"].ms - r["pard_draft"].ms
        lines += [fmt(r["verify"]), fmt(r["pard_draft"]), fmt(r["sd_draft"]),
                  f"{'PARD iteration':>24}: {r['pard_iteration_ms']:8.2f} ms (outside the two calls {outside:5.2f} "
                  "ms); predicted speedup over ar at mean accepted "
                  + ", ".join(f"{a}: {s:.2f}x" for a, s in r["speedup"].items())]
    print("\n".join(lines), flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        as_dict = lambda c: dict(dataclasses.asdict(c), roofline=c.roofline(peak))  # noqa: E731
        result = dict(device=device.device_kind, platform=device.platform, peak_bytes_per_s=peak,
                      target=args.target, draft=args.draft, dtype=args.dtype, context=n, random_weights=args.random_weights,
                      ar=as_dict(ar), ar_iteration_ms=ar_iter, prefill=as_dict(pre),
                      k=[dict(k=r["k"], verify=as_dict(r["verify"]), pard_draft=as_dict(r["pard_draft"]),
                              sd_draft=as_dict(r["sd_draft"]), pard_iteration_ms=r["pard_iteration_ms"],
                              predicted_speedup=r["speedup"]) for r in rows])
        with open(os.path.join(args.out, "bench_calls.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "bench_calls.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
