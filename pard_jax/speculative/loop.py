"""The generation loop on device: draft -> verify -> accept -> commit (`speculative.steps`) in `lax.while_loop`.

Plain autoregressive decoding is the same loop with k = 0 draft tokens: the target verifies only the last
committed token and the acceptance rule picks the next one. The host sees the state once per chunk of
iterations (for streaming and stopping), never once per token.

Sequence bookkeeping per row b: `seq[b]` holds prompt and generated tokens; `last[b]` is the position of
the newest committed token, whose keys/values are not yet in the caches (every iteration feeds it first).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from pard_jax.errors import UserError
from pard_jax.models import decoder
from pard_jax.models.cache import KVCache, init_cache
from pard_jax.models.config import ModelConfig
from pard_jax.models.kernels import PLAIN, Kernels
from pard_jax.speculative import steps
from pard_jax.speculative.sampling import SamplingParams, probabilities


PREFILL_CHUNK = 512  # the default prefill chunk: attention memory ~ chunk x context


class Mode(enum.StrEnum):
    """How drafts are made. A str: "ar", "sd" and "pard" in configs and on the command line are these values."""

    AR = "ar"  # no draft: plain autoregressive decoding
    SD = "sd"  # vanilla speculative decoding: k autoregressive draft steps per iteration
    PARD = "pard"  # PARD: k draft tokens from one draft pass over k-1 mask tokens

    @property
    def uses_draft(self) -> bool:
        return self is not Mode.AR

    @classmethod
    def parse(cls, value: str) -> "Mode":
        try:
            return cls(value)
        except ValueError:
            raise UserError(f"unknown mode {value!r}; choose one of {', '.join(m.value for m in cls)}") from None


@struct.dataclass
class LoopState:
    seq: jax.Array  # [B, C] int32: prompt then generated tokens
    prompt_len: jax.Array  # [B]
    last: jax.Array  # [B] position of the newest committed token
    done: jax.Array  # [B] bool
    target_cache: KVCache
    draft_cache: KVCache | None
    features: jax.Array | None  # [B, k+1, F]: a PARD-2 draft's recent target features (`steps.advance_features`)
    key: jax.Array
    target_calls: jax.Array  # [B] verify calls while the row was active
    accepted_at: jax.Array  # [B, max(k, 1)] iterations in which draft position i was accepted
    iteration: jax.Array  # [] iterations run so far

    @property
    def num_generated(self) -> jax.Array:
        return self.last + 1 - self.prompt_len


@dataclasses.dataclass(frozen=True)
class DecodeLoop:
    """Everything static about a generation program (hashable: jitted with `self` static)."""

    target_cfg: ModelConfig
    mode: Mode = Mode.AR
    k: int = 0
    draft_cfg: ModelConfig | None = None
    mask_id: int | None = None  # PARD's mask token, the id the draft was trained with (`speculative.assemble`)
    sampling: SamplingParams = SamplingParams()
    max_new_tokens: int = 128
    eos_ids: tuple[int, ...] = ()
    dtype: Any = jnp.float32
    prefill_chunk: int = PREFILL_CHUNK  # prompt tokens written per prefill step (bounds attention memory)
    # The kernels of the platform the program is compiled for (`Kernels.for_platform`, `speculative.assemble`).
    kernels: Kernels = PLAIN
    # PARD-2's target-dependent drafting: the draft reads the target's hidden states (draft_cfg.pard2).
    target_dependent: bool = False
    # Logical-axis rules of each model's activations and cache on the generation mesh (speculative.placement);
    # empty: one device, no constraints.
    target_rules: tuple = ()
    draft_rules: tuple = ()

    def __post_init__(self):
        mode = Mode.parse(self.mode)
        object.__setattr__(self, "mode", mode)
        # What a mode does not use is dropped, so that loops running the same program are equal (one jit key):
        # ar has no draft and k = 0; only PARD has a mask id and target-dependent drafting.
        if not mode.uses_draft:
            object.__setattr__(self, "k", 0)
            object.__setattr__(self, "draft_cfg", None)
        if mode is not Mode.PARD:
            object.__setattr__(self, "mask_id", None)
            object.__setattr__(self, "target_dependent", False)
        if mode.uses_draft and self.draft_cfg is None:
            raise UserError(f"mode {mode.value!r} needs the draft's config (draft_cfg); use mode ar without a draft")
        if mode is Mode.PARD and self.mask_id is None:
            raise UserError("a PARD loop needs mask_id, the id the draft was trained with (its pard_token); "
                            "build it with speculative.assemble.decode_loop")
        if self.target_dependent and self.draft_cfg.pard2 is None:
            raise UserError("target-dependent drafting needs a PARD-2 draft (one with target_proj)")

    @property
    def feature_layers(self) -> tuple[int, ...]:
        """The target hidden states the draft reads (empty unless target-dependent)."""
        return self.draft_cfg.pard2.target_layers if self.target_dependent else ()

    def check_context(self, prompt_tokens: int, max_cache_len: int | None, shorten: str = "the prompt") -> None:
        """Refuse a prompt whose tokens plus the new ones exceed the context: `max_cache_len`, by default the
        target's own. `shorten` names what the refusal asks to shorten."""
        context = max_cache_len or self.target_cfg.max_position_embeddings
        need = prompt_tokens + self.max_new_tokens
        if need > context:
            raise UserError(
                f"a prompt of {prompt_tokens} tokens plus {self.max_new_tokens} new tokens needs {need} positions "
                f"but the context is {context}; shorten {shorten}, lower --max-new-tokens, or raise "
                "max_cache_len in the config (up to what the model was trained for)")

    def capacity(self, prompt_bucket: int) -> int:
        """Cache/sequence length: prompt, new tokens, and the widest write past `last` (2k), rounded up."""
        need = prompt_bucket + self.max_new_tokens + 2 * self.k + 2
        return -(-need // 64) * 64

    def _iterate(self, target_params, draft_params, state: LoopState) -> LoopState:
        """One iteration: draft -> verify -> accept -> commit."""
        key, k_draft, k_accept = jax.random.split(state.key, 3)
        with nn.logical_axis_rules(self.draft_rules):
            d = steps.draft(draft_params, self.draft_cfg, state.draft_cache, state.seq, state.last,
                            k=self.k, parallel=self.mode is Mode.PARD, mask_id=self.mask_id,
                            vocab=self.target_cfg.vocab_size, sp=self.sampling, key=k_draft, dtype=self.dtype,
                            kernels=self.kernels, features=state.features)
        with nn.logical_axis_rules(self.target_rules):
            logits, target_cache, *verified = steps.verify(
                target_params, self.target_cfg, state.seq, state.last, d.tokens, state.target_cache,
                dtype=self.dtype, kernels=self.kernels, feature_layers=self.feature_layers)
        if self.sampling.greedy:
            n, nxt = steps.accept_greedy(d.tokens, logits)
        else:
            n, nxt = steps.accept_sampling(k_accept, d.tokens, d.probs, probabilities(logits, self.sampling))
        c = steps.commit(state.seq, state.prompt_len, state.last, state.done, d.tokens, n, nxt,
                         max_new_tokens=self.max_new_tokens, eos_ids=self.eos_ids)
        k = d.tokens.shape[1]
        features = state.features
        if self.target_dependent:
            with nn.logical_axis_rules(self.target_rules):
                features = nn.with_logical_constraint(
                    steps.advance_features(features, verified[0], c.last - state.last), ("batch", None, None))
        return state.replace(
            seq=c.seq, last=c.last, done=c.done, key=key, target_cache=target_cache, draft_cache=d.cache,
            features=features,
            target_calls=state.target_calls + (~state.done).astype(jnp.int32),
            accepted_at=state.accepted_at.at[:, :k].add(c.accepted.astype(jnp.int32)),
            iteration=state.iteration + 1)

    def _prefill(self, params, cfg: ModelConfig, rules: tuple, prompts: jax.Array, capacity: int) -> KVCache:
        with nn.logical_axis_rules(rules):
            cache = init_cache(cfg, prompts.shape[0], capacity, self.dtype)
            return decoder.prefill(params, cfg, prompts, cache, chunk=self.prefill_chunk, dtype=self.dtype,
                                   kernels=self.kernels)

    # ---- jitted programs (`start_jit`, `run_jit`) -------------------------------------------------------
    def start(self, target_params, draft_params, prompts: jax.Array, prompt_len: jax.Array, done: jax.Array,
              key: jax.Array) -> LoopState:
        """prompts [B, P] right-padded, prompt_len [B] >= 1 -> the initial LoopState (caches prefilled)."""
        B, P = prompts.shape
        C = self.capacity(P)
        seq = jnp.zeros((B, C), jnp.int32).at[:, :P].set(prompts)
        features = None
        if self.target_dependent:  # f at positions last-k-1 .. last-1, last = prompt_len - 1
            with nn.logical_axis_rules(self.target_rules):
                cache = init_cache(self.target_cfg, B, C, self.dtype)
                target_cache, features = decoder.prefill(
                    target_params, self.target_cfg, prompts, cache, chunk=self.prefill_chunk, dtype=self.dtype,
                    kernels=self.kernels, feature_layers=self.feature_layers, keep_from=prompt_len - self.k - 2,
                    keep=self.k + 1)
        else:
            target_cache = self._prefill(target_params, self.target_cfg, self.target_rules, prompts, C)
        draft_cache = None
        if self.mode.uses_draft:
            draft_cache = self._prefill(draft_params, self.draft_cfg, self.draft_rules, prompts, C)
        return LoopState(seq=seq, prompt_len=prompt_len, last=prompt_len - 1, done=done,
                         target_cache=target_cache, draft_cache=draft_cache, features=features, key=key,
                         target_calls=jnp.zeros((B,), jnp.int32),
                         accepted_at=jnp.zeros((B, max(self.k, 1)), jnp.int32),
                         iteration=jnp.zeros((), jnp.int32))

    def run(self, target_params, draft_params, state: LoopState, num_iterations: jax.Array) -> LoopState:
        """Run up to `num_iterations` more iterations (fewer when every row is done)."""
        stop_at = state.iteration + num_iterations

        def cond(s: LoopState):
            return (s.iteration < stop_at) & ~jnp.all(s.done)

        return jax.lax.while_loop(cond, lambda s: self._iterate(target_params, draft_params, s), state)


start_jit = jax.jit(DecodeLoop.start, static_argnums=0)
run_jit = jax.jit(DecodeLoop.run, static_argnums=0, donate_argnums=3)
