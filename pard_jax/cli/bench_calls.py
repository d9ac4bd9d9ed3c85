"""Micro-benchmark: the cost of one AR step, one verify call and one draft call, and the loop's overhead.

python infer/bench_calls.py [--target SPEC] [--draft SPEC] [--draft-layers N] [-k 4,8,12] [--repeats R]

Every cost is device time inside one jitted program, without Python dispatch: a model call is repeated R
times in a `lax.fori_loop` that carries its cache (so nothing is hoisted), on a cache filled to --context
tokens; a loop iteration (draft -> verify -> accept -> commit, or one plain AR iteration) is measured in
the real on-device loop as (time of N+20 iterations - time of N) / 20. "outside" is what an iteration costs
beyond its draft and verify calls (acceptance, commit, bookkeeping). Each figure is the minimum over several
rounds: the round least disturbed by other work on a shared machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from pard_jax.cli import run_cli


def per_call_ms(call, cache, repeats: int) -> float:
    """Device time of one `call(cache) -> (tokens, cache)`, from a fori_loop of `repeats` calls.

    The tokens are summed into the carry so that the compiler cannot drop the logits' computation.
    """
    def body(i, carry):
        cache, total = carry
        tokens, cache = call(cache)
        return cache, total + jnp.sum(tokens)

    loop = jax.jit(lambda c: jax.lax.fori_loop(0, repeats, body, (c, jnp.zeros((), jnp.int32))))
    jax.block_until_ready(loop(cache))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        jax.block_until_ready(loop(cache))
        times.append(time.perf_counter() - t0)
    return min(times) / repeats * 1e3


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", default="smollm2-135m-instruct")
    p.add_argument("--draft", default="smollm2-135m-instruct")
    p.add_argument("--draft-layers", type=int, default=4)
    p.add_argument("--mask-token-id", type=int, default=16)
    p.add_argument("-k", default="4,8,12")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--context", type=int, default=200)
    args = p.parse_args(argv)
    return run_cli(lambda: bench_calls(args))


def bench_calls(args) -> None:
    from pard_jax.models import decoder
    from pard_jax.models.cache import init_cache
    from pard_jax.speculative import steps
    from pard_jax.speculative.loop import DecodeLoop, Mode
    from pard_jax.speculative.sampling import SamplingParams
    from pard_jax.weights.sources import load_model

    target = load_model(args.target)
    draft = load_model(args.draft, num_layers=args.draft_layers, shared_embed=target.params["embed"])
    tc, dc = target.cfg, draft.cfg
    tp, dp = (jax.device_put(decoder.unstack_layers(m.params)) for m in (target, draft))
    C, n = 512, args.context
    seq = jax.random.randint(jax.random.key(0), (1, C), 0, 1000).astype(jnp.int32)
    tcache = decoder.prefill(tp, tc, seq[:, :n], init_cache(tc, 1, C))
    dcache = decoder.prefill(dp, dc, seq[:, :n], init_cache(dc, 1, C))
    start, last = jnp.array([n], jnp.int32), jnp.array([n - 1], jnp.int32)
    greedy = SamplingParams()

    def verify(width):
        def call(c):
            logits, c = decoder.forward_cached(tp, tc, seq[:, n:n + width], c, start)
            return jnp.argmax(logits, axis=-1), c
        return call

    ar_ms = per_call_ms(verify(1), tcache, args.repeats)
    ar_iter = iteration_ms(DecodeLoop(tc, max_new_tokens=400), tp, None, seq[:, :64])
    print(f"AR step (target, 1 token): {ar_ms:6.2f} ms; AR loop iteration {ar_iter:6.2f} ms "
          f"(outside the model call {ar_iter - ar_ms:5.2f} ms, {(ar_iter - ar_ms) / ar_iter:5.1%})")
    for k in [int(x) for x in args.k.split(",")]:
        verify_ms = per_call_ms(verify(k + 1), tcache, args.repeats)
        pard_ms = per_call_ms(lambda c: steps.pard_draft(dp, dc, c, seq, last, k=k, mask_id=args.mask_token_id,
                                                         vocab=tc.vocab_size, sp=greedy, key=jax.random.key(0))[::2],
                              dcache, args.repeats)
        sd_ms = per_call_ms(lambda c: steps.ar_draft(dp, dc, c, seq, last, k=k, vocab=tc.vocab_size, sp=greedy,
                                                     key=jax.random.key(0))[::2], dcache, args.repeats)
        loop = DecodeLoop(tc, mode=Mode.PARD, k=k, draft_cfg=dc, mask_id=args.mask_token_id, max_new_tokens=400)
        it = iteration_ms(loop, tp, dp, seq[:, :64])
        outside = it - pard_ms - verify_ms
        print(f"k={k:2d}: verify ({k + 1} tokens) {verify_ms:6.2f} ms = {verify_ms / ar_ms:4.2f}x AR step | "
              f"pard draft {pard_ms:6.2f} ms = {pard_ms / ar_ms:4.2f}x | sd draft {sd_ms:6.2f} ms | "
              f"pard iteration {it:6.2f} ms, outside the two calls {outside:5.2f} ms ({outside / it:5.1%})")
