"""Timing device calls for `bench_calls`: one model call repeated inside one jitted program, a loop iteration
of the real on-device loop, a prefill, and the bytes each must read (for the roofline)."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

from pard_jax.models import decoder
from pard_jax.models.cache import bytes_per_position, init_cache
from pard_jax.program_cost import per_device_bytes
from pard_jax.speculative.generator import PRNG_IMPL
from pard_jax.speculative.loop import DecodeLoop, run_jit, start_jit


def per_call_ms(call, params, cache, repeats: int) -> float:
    """Device time of one `call(params, cache) -> (tokens, cache)`, from a fori_loop of `repeats` calls.

    The parameters are arguments of the program (not constants folded into it); the tokens are summed into the
    carry so that the compiler cannot drop the logits' computation.
    """
    def body(params, i, carry):
        cache, total = carry
        tokens, cache = call(params, cache)
        return cache, total + jnp.sum(tokens)

    loop = jax.jit(lambda p, c: jax.lax.fori_loop(0, repeats, lambda i, x: body(p, i, x),
                                                  (c, jnp.zeros((), jnp.int32))))
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


def iteration_ms(loop: DecodeLoop, target_params, draft_params, prompt) -> float:
    """One iteration of `loop` on device: (time of 24 iterations - time of 4) / 20, the best of 5 each."""
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


def prefill_ms(loop: DecodeLoop, params, tokens) -> float:
    """Device time of writing a [1, P] prompt into a fresh cache of the loop's capacity for it, as generation does
    (chunk by chunk; the best of 5, after a warm-up)."""
    cfg, dtype = loop.target_cfg, loop.dtype
    capacity = loop.capacity(tokens.shape[1])
    run = jax.jit(lambda p, t: decoder.prefill(p, cfg, t, init_cache(cfg, 1, capacity, dtype),
                                                 chunk=loop.prefill_chunk, dtype=dtype, kernels=loop.kernels))
    return best_ms(lambda: run(params, tokens), rounds=5)


def weight_bytes_read(params, cfg) -> int:
    """Bytes of weights one forward call multiplies by: all of them, except an untied input table (a lookup)."""
    total = per_device_bytes(params)
    if not cfg.tie_word_embeddings and cfg.draft_vocab is None:
        total -= per_device_bytes(params["embed"])
    return total


def cache_bytes_read(cfg, capacity: int, dtype) -> int:
    """Bytes of one row's KV cache a call attends over (every entry of its capacity, masked or not)."""
    return capacity * bytes_per_position(cfg, dtype)


@dataclasses.dataclass
class Call:
    name: str
    ms: float
    bytes_read: int

    def roofline(self, peak: float | None) -> float | None:
        return None if not peak else self.bytes_read / (self.ms / 1e3) / peak
