"""The generation loop on device: (draft ->) verify -> accept -> commit inside `lax.while_loop`.

Plain autoregressive decoding is the same loop with k = 0 draft tokens: the target verifies only the last
committed token and the acceptance rule picks the next one. The host sees the state once per chunk of
iterations (for streaming and stopping), never once per token.

Sequence bookkeeping per row b: `seq[b]` holds prompt and generated tokens; `last[b]` is the position of
the newest committed token, whose keys/values are not yet in the caches (every iteration feeds it first).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from pard_jax import acceptance, drafting, model
from pard_jax.cache import KVCache, init_cache
from pard_jax.model_config import ModelConfig
from pard_jax.sampling import SamplingParams, probabilities

MODES = ("ar", "sd", "pard")

# How many times each jitted program was traced (= compiled). Tests assert on it.
TRACE_COUNTS: collections.Counter = collections.Counter()


@struct.dataclass
class State:
    seq: jax.Array  # [B, C] int32: prompt then generated tokens
    prompt_len: jax.Array  # [B]
    last: jax.Array  # [B] position of the newest committed token
    done: jax.Array  # [B] bool
    target_cache: KVCache
    draft_cache: KVCache | None
    key: jax.Array
    target_calls: jax.Array  # [B] verify calls while the row was active
    accepted_at: jax.Array  # [B, max(k, 1)] iterations in which draft position i was accepted
    iteration: jax.Array  # [] iterations run so far

    @property
    def num_generated(self) -> jax.Array:
        return self.last + 1 - self.prompt_len


@dataclasses.dataclass(frozen=True)
class Engine:
    """Everything static about a generation program (hashable: jitted with `self` static)."""

    target_cfg: ModelConfig
    mode: str = "ar"
    k: int = 0
    draft_cfg: ModelConfig | None = None
    mask_id: int = 0
    sampling: SamplingParams = SamplingParams()
    max_new_tokens: int = 128
    eos_ids: tuple[int, ...] = ()
    dtype: Any = jnp.float32

    @property
    def draft_len(self) -> int:
        return 0 if self.mode == "ar" else self.k

    def capacity(self, prompt_bucket: int) -> int:
        """Cache/sequence length: prompt, new tokens, and the widest write past `last` (2k), rounded up."""
        need = prompt_bucket + self.max_new_tokens + 2 * self.draft_len + 2
        return -(-need // 64) * 64

    # ---- one iteration -------------------------------------------------------------------------------
    def _propose(self, draft_params, state: State, key):
        B = state.seq.shape[0]
        vocab = self.target_cfg.vocab_size
        if self.mode == "ar":
            return jnp.zeros((B, 0), jnp.int32), jnp.zeros((B, 0, vocab), jnp.float32), state.draft_cache
        kw = dict(k=self.k, vocab=vocab, sp=self.sampling, key=key, dtype=self.dtype)
        if self.mode == "pard":
            d = drafting.pard_draft(draft_params, self.draft_cfg, state.draft_cache, state.seq, state.last,
                                    mask_id=self.mask_id, **kw)
        else:
            d = drafting.ar_draft(draft_params, self.draft_cfg, state.draft_cache, state.seq, state.last, **kw)
        return d.tokens, d.probs, d.cache

    def _iterate(self, target_params, draft_params, state: State) -> State:
        key, k_draft, k_accept = jax.random.split(state.key, 3)
        draft, q, draft_cache = self._propose(draft_params, state, k_draft)
        last_token = jnp.take_along_axis(state.seq, state.last[:, None], axis=1)
        verify_in = jnp.concatenate([last_token, draft], axis=1)  # [B, k+1]
        logits, target_cache = model.forward_cached(target_params, self.target_cfg, verify_in,
                                                    state.target_cache, state.last, dtype=self.dtype)
        if self.sampling.greedy:
            n, nxt = acceptance.accept_greedy(draft, logits)
        else:
            n, nxt = acceptance.accept_sampling(k_accept, draft, q, probabilities(logits, self.sampling))
        return self._commit(state, draft, n, nxt, target_cache, draft_cache, key)

    def _commit(self, state: State, draft, n, nxt, target_cache, draft_cache, key) -> State:
        """Append draft[:n] + [nxt] to each active row, cut at the first EOS and at max_new_tokens."""
        B, k = draft.shape
        idx = jnp.arange(k + 1, dtype=jnp.int32)[None, :]
        candidates = jnp.concatenate([draft, jnp.zeros((B, 1), jnp.int32)], axis=1)
        new = jnp.where(idx < n[:, None], candidates, nxt[:, None])  # entries past n are never read
        count = jnp.minimum(n + 1, self.max_new_tokens - state.num_generated)
        if self.eos_ids:
            is_eos = jnp.isin(new, jnp.asarray(self.eos_ids)) & (idx < count[:, None])
            hit = jnp.any(is_eos, axis=1)
            count = jnp.where(hit, jnp.argmax(is_eos, axis=1) + 1, count)
        else:
            hit = jnp.zeros((B,), bool)
        active = ~state.done
        count = jnp.where(active, count, 0)
        seq = jax.vmap(lambda r, t, s: jax.lax.dynamic_update_slice(r, t, (s,)))(state.seq, new, state.last + 1)
        last = state.last + count
        generated = last + 1 - state.prompt_len
        done = state.done | (active & (hit | (generated >= self.max_new_tokens)))
        accepted = (idx[:, :k] < n[:, None]) & active[:, None]
        accepted_at = state.accepted_at.at[:, :k].add(accepted.astype(jnp.int32))
        return state.replace(
            seq=seq, last=last, done=done, key=key,
            target_cache=target_cache.replace(lengths=last),
            draft_cache=draft_cache,
            target_calls=state.target_calls + active.astype(jnp.int32),
            accepted_at=accepted_at, iteration=state.iteration + 1)

    # ---- jitted programs --------------------------------------------------------------------------
    def start(self, target_params, draft_params, prompts: jax.Array, prompt_len: jax.Array, done: jax.Array,
              key: jax.Array) -> State:
        """prompts [B, P] right-padded, prompt_len [B] >= 1 -> the initial State (caches prefilled)."""
        TRACE_COUNTS["start"] += 1
        B, P = prompts.shape
        C = self.capacity(P)
        seq = jnp.zeros((B, C), jnp.int32).at[:, :P].set(prompts)
        target_cache = model.prefill(target_params, self.target_cfg, prompts,
                                     init_cache(self.target_cfg, B, C, self.dtype), dtype=self.dtype)
        draft_cache = None
        if self.mode != "ar":
            draft_cache = model.prefill(draft_params, self.draft_cfg, prompts,
                                        init_cache(self.draft_cfg, B, C, self.dtype), dtype=self.dtype)
        last = prompt_len - 1
        return State(seq=seq, prompt_len=prompt_len, last=last, done=done,
                     target_cache=target_cache.replace(lengths=last), draft_cache=draft_cache, key=key,
                     target_calls=jnp.zeros((B,), jnp.int32),
                     accepted_at=jnp.zeros((B, max(self.draft_len, 1)), jnp.int32),
                     iteration=jnp.zeros((), jnp.int32))

    def run(self, target_params, draft_params, state: State, num_iterations: jax.Array) -> State:
        """Run up to `num_iterations` more iterations (fewer when every row is done)."""
        TRACE_COUNTS["run"] += 1
        stop_at = state.iteration + num_iterations

        def cond(s: State):
            return (s.iteration < stop_at) & ~jnp.all(s.done)

        return jax.lax.while_loop(cond, lambda s: self._iterate(target_params, draft_params, s), state)


start_jit = jax.jit(Engine.start, static_argnums=0)
run_jit = jax.jit(Engine.run, static_argnums=0, donate_argnums=3)
