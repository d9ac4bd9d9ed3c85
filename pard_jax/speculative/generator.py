"""The host side of generation: batching, length buckets, compilation, streaming and statistics.

Everything per token happens on device in `speculative.loop`; this module only chops prompts into
batches, pads them to static shapes, compiles one program pair per (loop, batch bucket, prompt bucket,
parameter shapes) and reads results back once per chunk of iterations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from pard_jax import sharding
from pard_jax.errors import UserError
from pard_jax.models.cache import bytes_per_position
from pard_jax.models.layout import unstack_layers
from pard_jax.speculative import placement
from pard_jax.speculative.loop import DecodeLoop, LoopState, Mode, run_jit, start_jit

MIN_PROMPT_BUCKET = 32
# Sampling keys use XLA's RngBitGenerator ("rbg") rather than threefry: the decode loop draws random numbers
# for every row and draft position, and threefry's hash compiles to many ops (docs/kernels.md); the draws are
# as good, though not the same numbers.
PRNG_IMPL = "rbg"


def shape_signature(tree) -> tuple:
    """A hashable description of a params tree: its structure and each leaf's shape, dtype and sharding."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(leaf.shape), np.dtype(leaf.dtype), getattr(leaf, "sharding", None))
                          for leaf in leaves)


def _abstract(signature: tuple):
    treedef, leaves = signature
    return jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(shape, dtype, sharding=s) for shape, dtype, s in leaves])


def input_shardings(mesh: Mesh | None):
    """Shardings of (prompts [B, P], lengths [B], done [B], key, an iteration count): rows over `data`."""
    if mesh is None:
        return (None,) * 5
    rows = [placement.batch_sharding(mesh, n) for n in (2, 1, 1)]
    return (*rows, sharding.replicated(mesh), sharding.replicated(mesh))


def _mesh_context(mesh: Mesh | None):
    return jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext()


@functools.lru_cache(maxsize=32)
def compiled_programs(loop: DecodeLoop, batch: int, prompt_len: int, target_signature: tuple,
                      draft_signature: tuple, mesh: Mesh | None = None):
    """The (start, run) programs for one loop, batch bucket, prompt bucket, parameter shapes (and shardings) and
    mesh, compiled ahead of time. Shared by every Generator (e.g. those `Generator.with_mode` makes); the 32
    most recent are kept."""
    tp, dp = _abstract(target_signature), _abstract(draft_signature)
    rows, lengths, done, key, count = input_shardings(mesh)
    args = (jax.ShapeDtypeStruct((batch, prompt_len), jnp.int32, sharding=rows),
            jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=lengths),
            jax.ShapeDtypeStruct((batch,), bool, sharding=done))
    key = jax.ShapeDtypeStruct((), jax.random.key(0, impl=PRNG_IMPL).dtype, sharding=key)
    with _mesh_context(mesh):
        start = start_jit.lower(loop, tp, dp, *args, key).compile()
        state = jax.eval_shape(functools.partial(start_jit, loop), tp, dp, *args, key)
        if mesh is not None:
            state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state,
                                 start.output_shardings)
        run = run_jit.lower(loop, tp, dp, state, jax.ShapeDtypeStruct((), jnp.int32, sharding=count)).compile()
    return start, run


def read_back(state: LoopState, mesh: Mesh | None) -> tuple[np.ndarray, ...]:
    """(seq, last, done, target_calls, accepted_at) on the host. On a mesh the rows are spread over devices (and
    hosts): they are gathered first, so that every process sees every row."""
    fields = (state.seq, state.last, state.done, state.target_calls, state.accepted_at)
    return jax.device_get(fields) if mesh is None else placement.gather(fields, mesh)


def bucket(n: int, minimum: int = 1) -> int:
    """The next power of two >= max(n, minimum)."""
    return 1 << (max(n, minimum) - 1).bit_length()


def prompt_bucket(n: int, chunk: int) -> int:
    """The padded length of an n-token prompt: the next power of two (at least MIN_PROMPT_BUCKET) while that is
    at most `chunk`, else the next multiple of `chunk` (prefill runs chunk by chunk). A few short buckets, and
    long prompts padded by less than one chunk."""
    b = bucket(n, MIN_PROMPT_BUCKET)
    return b if b <= chunk else -(-n // chunk) * chunk


@dataclasses.dataclass
class Result:
    token_ids: list[int]
    target_calls: int
    accepted_at: list[int]  # per draft position: iterations in which it was accepted
    seconds: float  # wall time of this row's batch (prefill + decode), compilation excluded
    prefill_seconds: float  # of which the batch's prefill
    prompt_tokens: int

    @property
    def num_generated(self) -> int:
        return len(self.token_ids)

    @property
    def mean_accepted(self) -> float:
        """Generated tokens per target call (1.0 for plain decoding)."""
        return self.num_generated / max(self.target_calls, 1)

    @property
    def accept_rate_by_position(self) -> list[float]:
        return [a / max(self.target_calls, 1) for a in self.accepted_at]

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of the whole call (prefill included)."""
        return self.num_generated / self.seconds if self.seconds > 0 else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        decode = self.seconds - self.prefill_seconds
        return self.num_generated / decode if decode > 0 else 0.0

    @property
    def prefill_tokens_per_second(self) -> float:
        """This row's prompt tokens per second of its batch's prefill."""
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds > 0 else 0.0


# on_tokens(prompt_index, new_token_ids, finished) is called after each chunk of iterations.
OnTokens = Callable[[int, list[int], bool], None]


def cache_bytes_per_entry(loop: DecodeLoop) -> int:
    """Bytes of KV cache per row and position: target and draft."""
    cfgs = [loop.target_cfg] + ([loop.draft_cfg] if loop.draft_cfg is not None else [])
    return sum(bytes_per_position(c, loop.dtype) for c in cfgs)


@dataclasses.dataclass
class Generator:
    """Generates for batches of prompts with one DecodeLoop; parameters are placed on the device once.

    `max_cache_len` bounds prompt + new tokens (the context; default: the target's own, its
    max_position_embeddings); `cache_memory_gb` bounds one batch's KV cache.
    Prompts are padded to `prompt_bucket`s and prefilled `loop.prefill_chunk` tokens at a time; with
    batch_size > 1 they are batched in order of length, so long prompts do not pad short ones.

    On a `mesh` (`speculative.placement.make_mesh`) batch rows are spread over `data` (a batch is padded to a
    multiple of it) and each model's heads over its tensor axes; every process of a multi-host run calls
    `generate` with the same prompts and gets every result.
    """

    loop: DecodeLoop
    target_params: dict
    draft_params: dict | None = None
    batch_size: int = 1
    max_cache_len: int | None = None
    cache_memory_gb: float = 8.0
    chunk_iterations: int = 0  # iterations between host reads; 0 = run each batch to the end in one call
    mesh: Mesh | None = None
    compile_seconds: float = 0.0
    programs_compiled: int = 0
    # The loop with a draft whose draft_cfg and mask id `with_mode` gives a draft mode (default: `loop`, when it
    # has a draft): an ar generator made by `with_mode` keeps the draft, and its loop stays a plain ar loop.
    draft_loop: DecodeLoop | None = None

    def __post_init__(self):
        # Decoding reads each layer's weights from a buffer of its own (see models.layout).
        self.target_params = self._place(self.target_params, placement.TARGET_RULES)
        if self.draft_params is not None:
            self.draft_params = self._place(self.draft_params, placement.DRAFT_RULES)
        if self.mesh is not None:
            self.loop = placement.on_mesh(self.loop)
        if self.draft_loop is None and self.loop.mode.uses_draft:
            self.draft_loop = self.loop

    def _place(self, params, rules):
        params = unstack_layers(params)
        if self.mesh is None:
            return jax.device_put(params)
        return sharding.put_global(params, placement.param_shardings(self.mesh, params, rules))

    def with_mode(self, mode: Mode | str, k: int = 0, **loop_changes) -> "Generator":
        """A generator for another decoding mode (and k) over the same models, batching and streaming. Its ar
        loop equals the one a plain ar run builds (the same programs); a draft mode takes the draft's config, mask
        id and target-dependence from `draft_loop`, so pard -> ar -> pard works. `loop_changes` override any
        loop field (e.g. target_dependent=False: a PARD-2 draft run target-independently)."""
        mode = Mode.parse(mode)
        if mode.uses_draft and (self.draft_params is None or self.draft_loop is None):
            raise UserError(f"mode {mode.value!r} needs a draft model, and this generator was built without one "
                            "(give it the draft's params and a loop with the draft)")
        source = self.draft_loop or self.loop
        changes = dict(mode=mode, k=k, draft_cfg=source.draft_cfg, mask_id=source.mask_id,
                       target_dependent=source.target_dependent)
        loop = dataclasses.replace(self.loop, **{**changes, **loop_changes})
        return Generator(loop, self.target_params, self.draft_params, batch_size=self.batch_size,
                         max_cache_len=self.max_cache_len, cache_memory_gb=self.cache_memory_gb,
                         chunk_iterations=self.chunk_iterations, mesh=self.mesh, draft_loop=self.draft_loop)

    @property
    def _loop_draft_params(self) -> dict | None:
        """The draft's params where the loop drafts, else None (an ar loop's programs take no draft)."""
        return self.draft_params if self.loop.mode.uses_draft else None

    def check_prompt(self, n_tokens: int) -> None:
        self.loop.check_context(n_tokens, self.max_cache_len)

    def _shape(self, batch: Sequence[Sequence[int]]) -> tuple[int, int]:
        """(batch bucket, prompt bucket) of one batch, checked against the cache memory budget."""
        B = placement.padded_batch(min(bucket(len(batch)), self.batch_size),
                                   self.mesh.shape["data"] if self.mesh is not None else 1)
        P = prompt_bucket(max(len(p) for p in batch), self.loop.prefill_chunk)
        gb = B * self.loop.capacity(P) * cache_bytes_per_entry(self.loop) / 2**30
        if gb > self.cache_memory_gb:
            raise UserError(
                f"a batch of {B} prompts of up to {max(len(p) for p in batch)} tokens needs {gb:.1f} GB of KV cache, "
                f"over cache_memory_gb={self.cache_memory_gb:g}; lower --batch-size, shorten the prompts, or raise "
                "cache_memory_gb in the config")
        return B, P

    def _programs(self, B: int, P: int):
        """The compiled (start, run) pair for one (batch bucket, prompt bucket); compile time is counted here."""
        misses = compiled_programs.cache_info().misses
        t0 = time.perf_counter()
        programs = compiled_programs(self.loop, B, P, shape_signature(self.target_params),
                                     shape_signature(self._loop_draft_params), self.mesh)
        if compiled_programs.cache_info().misses > misses:
            self.compile_seconds += time.perf_counter() - t0
            self.programs_compiled += 1
        return programs

    def generate(self, prompts: Sequence[Sequence[int]], seed: int = 0, on_tokens: OnTokens | None = None
                 ) -> list[Result]:
        """Generate for each prompt (token ids); results in prompt order. Every prompt and batch is checked
        before any is decoded."""
        for p in prompts:
            if len(p) == 0:
                raise UserError("a prompt is empty; give every prompt at least one token")
            self.check_prompt(len(p))
        order = list(range(len(prompts)))
        if self.batch_size > 1:
            order.sort(key=lambda i: len(prompts[i]))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        shapes = [self._shape([prompts[i] for i in b]) for b in batches]
        results: list[Result | None] = [None] * len(prompts)
        key = jax.random.key(seed, impl=PRNG_IMPL)
        for batch, shape in zip(batches, shapes):
            key, batch_key = jax.random.split(key)
            for i, r in zip(batch, self._generate_batch([prompts[i] for i in batch], batch, shape, batch_key,
                                                        on_tokens)):
                results[i] = r
        return results

    def _generate_batch(self, batch, indices, shape, key, on_tokens):
        rows = len(batch)
        B, P = shape
        tokens = np.zeros((B, P), np.int32)
        lengths = np.ones((B,), np.int32)
        for i, p in enumerate(batch):
            tokens[i, :len(p)] = p
            lengths[i] = len(p)
        done = np.arange(B) >= rows  # padding rows never run
        start, run = self._programs(B, P)
        iterations = np.int32(self.chunk_iterations or self.loop.max_new_tokens + 1)
        if self.mesh is not None:  # global arrays: each process fills its own devices' rows
            tokens, lengths_in, done, key, iterations = sharding.put_global(
                (tokens, lengths, done, key, iterations), input_shardings(self.mesh))
        else:
            lengths_in = lengths

        t0 = time.perf_counter()
        draft_params = self._loop_draft_params
        state = jax.block_until_ready(start(self.target_params, draft_params, tokens, lengths_in, done, key))
        prefill_seconds = time.perf_counter() - t0
        reported = np.zeros((B,), np.int64)
        closed = np.zeros((B,), bool)
        while True:
            state = run(self.target_params, draft_params, state, iterations)
            seq, last, row_done, calls, accepted = read_back(state, self.mesh)
            finished = bool(np.all(row_done))
            if on_tokens is not None:
                for i in range(rows):
                    upto = last[i] + 1 - lengths[i]
                    if upto > reported[i] or (row_done[i] and not closed[i]):
                        new = seq[i, lengths[i] + reported[i]:last[i] + 1].tolist()
                        on_tokens(indices[i], new, bool(row_done[i]))
                        reported[i], closed[i] = upto, row_done[i]
            if finished:
                break
        seconds = time.perf_counter() - t0
        k = self.loop.k
        return [Result(token_ids=seq[i, lengths[i]:last[i] + 1].tolist(), target_calls=int(calls[i]),
                       accepted_at=accepted[i, :k].tolist(), seconds=seconds, prefill_seconds=prefill_seconds,
                       prompt_tokens=int(lengths[i])) for i in range(rows)]
