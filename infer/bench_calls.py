"""Micro-benchmark: the cost of one AR step, one verify call and one draft call, and the loop's overhead.

python infer/bench_calls.py [--target SPEC] [--draft SPEC] [--draft-layers N] [-k 4,8,12] [--repeats R]

Each model call is jitted alone and timed (median of R after a warm-up) on a cache filled to about 200
tokens; "iteration" is one draft -> verify -> accept -> commit step of the real on-device loop, measured
as (time of N+M iterations - time of N) / M, and "outside model calls" is iteration - draft - verify.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def timed(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="smollm2-135m-instruct")
    p.add_argument("--draft", default="smollm2-135m-instruct")
    p.add_argument("--draft-layers", type=int, default=4)
    p.add_argument("-k", default="4,8,12")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--context", type=int, default=200)
    args = p.parse_args(argv)

    from pard_jax import decoding, drafting, model
    from pard_jax.cache import init_cache
    from pard_jax.sampling import SamplingParams
    from pard_jax.weights import load_model

    target = load_model(args.target)
    draft = load_model(args.draft, num_layers=args.draft_layers)
    tc, dc = target.cfg, draft.cfg
    C, n = 512, args.context
    tokens = jnp.asarray(jax.random.randint(jax.random.key(0), (1, C), 0, 1000), jnp.int32)
    tcache = model.prefill(target.params, tc, tokens[:, :n], init_cache(tc, 1, C))
    dcache = model.prefill(draft.params, dc, tokens[:, :n], init_cache(dc, 1, C))
    start = jnp.array([n], jnp.int32)

    step = jax.jit(lambda p, x, c, s: model.forward_cached(p, tc, x, c, s)[0])
    ar_ms = timed(step, target.params, tokens[:, n:n + 1], tcache, start, repeats=args.repeats)
    print(f"AR step (target, 1 token):          {ar_ms:7.2f} ms")
    for k in [int(x) for x in args.k.split(",")]:
        verify_ms = timed(step, target.params, tokens[:, n:n + k + 1], tcache, start, repeats=args.repeats)
        pard = jax.jit(lambda p, c, s, l: drafting.pard_draft(p, dc, c, s, l, k=k, mask_id=16, vocab=tc.vocab_size,
                                                               sp=SamplingParams(), key=jax.random.key(0)).tokens)
        sd = jax.jit(lambda p, c, s, l: drafting.ar_draft(p, dc, c, s, l, k=k, vocab=tc.vocab_size,
                                                           sp=SamplingParams(), key=jax.random.key(0)).tokens)
        last = start - 1
        pard_ms = timed(pard, draft.params, dcache, tokens, last, repeats=args.repeats)
        sd_ms = timed(sd, draft.params, dcache, tokens, last, repeats=args.repeats)

        engine = decoding.Engine(tc, mode="pard", k=k, draft_cfg=dc, mask_id=16, max_new_tokens=400)
        prompts, plen, done = tokens[:, :64], jnp.array([64], jnp.int32), jnp.array([False])

        def iterations(count):
            s = decoding.start_jit(engine, target.params, draft.params, prompts, plen, done, jax.random.key(0))
            jax.block_until_ready(s)
            t0 = time.perf_counter()
            s = decoding.run_jit(engine, target.params, draft.params, s, jnp.int32(count))
            jax.block_until_ready(s)
            return time.perf_counter() - t0

        iterations(2)
        few = statistics.median(iterations(4) for _ in range(3))
        many = statistics.median(iterations(24) for _ in range(3))
        iter_ms = (many - few) / 20 * 1e3
        outside = iter_ms - pard_ms - verify_ms
        print(f"k={k:2d}: verify ({k + 1} tokens) {verify_ms:7.2f} ms = {verify_ms / ar_ms:4.2f}x AR step | "
              f"pard draft {pard_ms:6.2f} ms | sd draft {sd_ms:6.2f} ms | pard iteration {iter_ms:7.2f} ms, "
              f"outside model calls {outside:6.2f} ms ({outside / iter_ms:5.1%})")


if __name__ == "__main__":
    main()
