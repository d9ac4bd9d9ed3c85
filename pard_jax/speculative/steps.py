"""The four steps of one speculative decoding iteration, as pure functions of arrays and static settings:

1. `draft`: the draft model proposes k tokens (and their distributions when sampling);
2. `verify`: one target forward pass over the newest committed token and the k draft tokens;
3. `accept_greedy` / `accept_sampling`: how many draft tokens to keep, and the next token;
4. `commit`: append the kept tokens and the next one to each row, stopping rows at EOS or max_new_tokens.

Plain autoregressive decoding is the same iteration with k = 0 draft tokens. `speculative.loop` runs it.

Drafting: `pard_draft` is PARD's single forward pass over the latest committed tokens followed by mask tokens;
`ar_draft` is vanilla speculative decoding, k autoregressive single-token steps in one jitted call. Both read
a fixed-length window of the committed sequence so that every row, whatever it accepted last time, uses the
same static shapes: the window starts at max(last - k, 0) and re-writes already-cached positions of real
tokens, which is harmless (their keys/values depend only on the prefix).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pard_jax.models import decoder
from pard_jax.models.cache import KVCache
from pard_jax.models.config import ModelConfig
from pard_jax.models.kernels import PLAIN, Kernels
from pard_jax.speculative.sampling import SamplingParams, probabilities, sample

# ----------------------------------------------------------------------------------------------- 1. draft


class Draft(NamedTuple):
    tokens: jax.Array  # [B, k] int32
    probs: jax.Array | None  # [B, k, V_target] float32; None when greedy
    cache: KVCache


def window(seq: jax.Array, last: jax.Array, width: int, back: int, fill: int) -> tuple[jax.Array, jax.Array]:
    """Each row's tokens at positions start .. start+width-1 with start = max(last - back, 0).

    seq [B, C] holds the committed tokens; positions after `last` [B] read as `fill`.
    Returns (tokens [B, width], start [B]).
    """
    start = jnp.maximum(last - back, 0)
    rows = jax.vmap(lambda r, s: jax.lax.dynamic_slice(r, (s,), (width,)))(seq, start)
    positions = start[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :]
    return jnp.where(positions <= last[:, None], rows, fill), start


def target_logits(logits: jax.Array, cfg: ModelConfig, vocab: int) -> jax.Array:
    """Draft logits [..., Vd] as logits over the target's vocabulary [..., vocab].

    Ids the draft cannot propose get the lowest logit, so their draft probability is exactly 0: ids past
    the draft's vocabulary, and with a sub-vocabulary head (`cfg.draft_vocab`) every id outside it. That keeps
    both acceptance rules exact: greedy compares the draft's choice with the target's argmax over the whole
    vocabulary, and in sampling the residual max(0, p - q) holds all of p's mass outside the sub-vocabulary.
    """
    low = jnp.finfo(logits.dtype).min
    if cfg.draft_vocab is not None:
        full = jnp.full(logits.shape[:-1] + (vocab,), low, logits.dtype)
        return full.at[..., jnp.asarray(cfg.draft_vocab)].set(logits)
    vd = logits.shape[-1]
    if vd >= vocab:
        return logits[..., :vocab]
    return jnp.concatenate([logits, jnp.full(logits.shape[:-1] + (vocab - vd,), low, logits.dtype)], axis=-1)


def choose(key: jax.Array, logits: jax.Array, sp: SamplingParams) -> tuple[jax.Array, jax.Array | None]:
    """Pick draft tokens from logits [..., V]: argmax when greedy, else sample and return the distribution."""
    if sp.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32), None
    probs = probabilities(logits, sp)
    return sample(key, probs), probs


def window_features(features: jax.Array, last: jax.Array, start: jax.Array, width: int) -> jax.Array:
    """A PARD-2 draft window's target features [B, width, F] from a row's recent features [B, k+1, F].

    features[b, i] is f at position last[b] - k - 1 + i (the target's hidden states; zeros before position 0).
    The window token at position p <= last reads f_{p-1}; each mask token (p > last) repeats the last real
    token's, f_{last-1}.
    """
    k = features.shape[1] - 1
    p = start[:, None] + jnp.arange(width, dtype=jnp.int32)[None, :]
    index = jnp.minimum(p - last[:, None] + k, k)
    return jnp.take_along_axis(features, index[..., None], axis=1)


def advance_features(features: jax.Array, verified: jax.Array, count: jax.Array) -> jax.Array:
    """The recent features after an iteration committed `count` [B] tokens.

    features [B, k+1, F] are f at positions last-k-1 .. last-1; verified [B, k+1, F] the verify pass's hidden
    states at positions last .. last+k (the newest committed token and the draft tokens: those up to the
    new `last` - 1 are committed ones). The result covers new_last-k-1 .. new_last-1, new_last = last + count.
    """
    both = jnp.concatenate([features, verified.astype(features.dtype)], axis=1)  # last-k-1 .. last+k
    width = features.shape[1]
    return jax.vmap(lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, width, axis=0))(both, count)


def pard_draft(params, cfg: ModelConfig, cache: KVCache, seq: jax.Array, last: jax.Array, *, k: int,
               mask_id: int, vocab: int, sp: SamplingParams, key: jax.Array, dtype=jnp.float32,
               kernels: Kernels = PLAIN, features: jax.Array | None = None) -> Draft:
    """k draft tokens in ONE forward pass: [... x_last, m, m, ..., m] with k-1 mask tokens.

    The output at x_last predicts the next token; the output at the j-th mask the token j+1 ahead.
    The masks' cache entries lie past the committed tokens and are overwritten later. `features`: a PARD-2
    draft's recent target features (`window_features`); None drafts target-independently.
    """
    tokens, start = window(seq, last, 2 * k, k, mask_id)
    at = (last - start)[:, None] + jnp.arange(k, dtype=jnp.int32)[None, :]
    if features is not None:
        features = window_features(features, last, start, 2 * k)
    logits, cache = decoder.forward_cached(params, cfg, tokens, cache, start, dtype=dtype, logits_at=at,
                                           kernels=kernels, features=features)
    d, q = choose(key, target_logits(logits, cfg, vocab), sp)
    return Draft(d, q, cache)


def ar_draft(params, cfg: ModelConfig, cache: KVCache, seq: jax.Array, last: jax.Array, *, k: int,
             vocab: int, sp: SamplingParams, key: jax.Array, dtype=jnp.float32, kernels: Kernels = PLAIN) -> Draft:
    """k draft tokens from k autoregressive steps of the draft (vanilla speculative decoding)."""
    keys = jax.random.split(key, k)
    tokens, start = window(seq, last, k + 1, k, 0)
    logits, cache = decoder.forward_cached(params, cfg, tokens, cache, start, dtype=dtype,
                                           logits_at=(last - start)[:, None], kernels=kernels)
    d0, q0 = choose(keys[0], target_logits(logits[:, 0], cfg, vocab), sp)

    def step(carry, xs):
        token, cache = carry
        j, step_key = xs
        logits, cache = decoder.forward_cached(params, cfg, token[:, None], cache, last + j, dtype=dtype,
                                               kernels=kernels)
        d, q = choose(step_key, target_logits(logits[:, 0], cfg, vocab), sp)
        return (d, cache), (d, q)

    (_, cache), (ds, qs) = jax.lax.scan(step, (d0, cache), (jnp.arange(1, k, dtype=jnp.int32), keys[1:]))
    d = jnp.concatenate([d0[:, None], ds.T], axis=1)
    q = None if sp.greedy else jnp.concatenate([q0[:, None], jnp.moveaxis(qs, 0, 1)], axis=1)
    return Draft(d, q, cache)


def draft(params, cfg: ModelConfig | None, cache: KVCache | None, seq: jax.Array, last: jax.Array, *, k: int,
          parallel: bool, mask_id: int, vocab: int, sp: SamplingParams, key: jax.Array, dtype=jnp.float32,
          kernels: Kernels = PLAIN, features: jax.Array | None = None) -> Draft:
    """Step 1: k draft tokens by PARD (`parallel`, target-dependent with `features`) or by k autoregressive
    draft steps; k = 0 drafts nothing."""
    if k == 0:
        B = seq.shape[0]
        return Draft(jnp.zeros((B, 0), jnp.int32), jnp.zeros((B, 0, vocab), jnp.float32), cache)
    kw = dict(k=k, vocab=vocab, sp=sp, key=key, dtype=dtype, kernels=kernels)
    if parallel:
        return pard_draft(params, cfg, cache, seq, last, mask_id=mask_id, features=features, **kw)
    return ar_draft(params, cfg, cache, seq, last, **kw)


# ---------------------------------------------------------------------------------------------- 2. verify


def verify(params, cfg: ModelConfig, seq: jax.Array, last: jax.Array, draft_tokens: jax.Array, cache: KVCache, *,
           dtype=jnp.float32, kernels: Kernels = PLAIN, feature_layers: tuple[int, ...] = ()):
    """Step 2: target logits [B, k+1, V] for the newest committed token seq[b, last[b]] followed by the draft
    tokens [B, k], written into the target cache at `last` (which rolls back whatever was rejected before).
    Returns (logits, cache), and with `feature_layers` (a PARD-2 draft's) the hidden features [B, k+1, F] too."""
    last_token = jnp.take_along_axis(seq, last[:, None], axis=1)
    tokens = jnp.concatenate([last_token, draft_tokens], axis=1)  # [B, k+1]
    return decoder.forward_cached(params, cfg, tokens, cache, last, dtype=dtype, kernels=kernels,
                                  feature_layers=feature_layers)


# ---------------------------------------------------------------------------------------------- 3. accept
# Both rules return (num_accepted [B] in 0..k, next_token [B]); the committed tokens of an iteration are
# draft[:, :num_accepted] followed by next_token. With k = 0 these reduce to plain decoding.


def leading_true(mask: jax.Array) -> jax.Array:
    """[B, k] bool -> [B] int32: the length of the all-True prefix of each row."""
    return jnp.sum(jnp.cumprod(mask.astype(jnp.int32), axis=-1), axis=-1).astype(jnp.int32)


def accept_greedy(draft: jax.Array, target_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """draft [B, k]; target_logits [B, k+1, V]. Keep drafts while they equal the target's argmax."""
    choice = jnp.argmax(target_logits, axis=-1).astype(jnp.int32)  # [B, k+1]
    n = leading_true(draft == choice[:, :-1])
    return n, jnp.take_along_axis(choice, n[:, None], axis=1)[:, 0]


def accept_sampling(key: jax.Array, draft: jax.Array, q: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Lossless speculative sampling (Leviathan et al. / Chen et al.).

    draft [B, k] with draft[:, j] ~ q[:, j]; q [B, k, V] draft probabilities; p [B, k+1, V] target
    probabilities. Accept draft j with probability min(1, p_j(d_j) / q_j(d_j)); at the first rejection
    sample from normalize(max(0, p_j - q_j)); if all k are accepted, sample from p_{k+1}.
    """
    B, k = draft.shape
    k_accept, k_next = jax.random.split(key)
    p_d = jnp.take_along_axis(p[:, :k], draft[..., None], axis=-1)[..., 0]
    q_d = jnp.take_along_axis(q, draft[..., None], axis=-1)[..., 0]
    u = jax.random.uniform(k_accept, (B, k))
    n = leading_true(u * q_d < p_d)  # u < p/q without dividing by a zero q
    q_ext = jnp.concatenate([q, jnp.zeros_like(p[:, :1])], axis=1)  # q_{k+1} = 0: the bonus is drawn from p
    p_n = jnp.take_along_axis(p, n[:, None, None], axis=1)[:, 0]
    q_n = jnp.take_along_axis(q_ext, n[:, None, None], axis=1)[:, 0]
    residual = jnp.maximum(p_n - q_n, 0.0)
    mass = jnp.sum(residual, axis=-1, keepdims=True)
    residual = jnp.where(mass > 0, residual / jnp.where(mass > 0, mass, 1.0), p_n)
    return n, sample(k_next, residual)


# ---------------------------------------------------------------------------------------------- 4. commit


class Committed(NamedTuple):
    seq: jax.Array  # [B, C] with the new tokens written after each row's old `last`
    last: jax.Array  # [B] position of the newest committed token
    done: jax.Array  # [B] bool
    accepted: jax.Array  # [B, k] bool: draft position j was accepted in a row that was still active


def commit(seq: jax.Array, prompt_len: jax.Array, last: jax.Array, done: jax.Array, draft: jax.Array,
           n: jax.Array, nxt: jax.Array, *, max_new_tokens: int, eos_ids: tuple[int, ...]) -> Committed:
    """Step 4: append draft[:n] + [nxt] to each active row, cut at the first EOS and at max_new_tokens."""
    B, k = draft.shape
    idx = jnp.arange(k + 1, dtype=jnp.int32)[None, :]
    candidates = jnp.concatenate([draft, jnp.zeros((B, 1), jnp.int32)], axis=1)
    new = jnp.where(idx < n[:, None], candidates, nxt[:, None])  # entries past n are never read
    count = jnp.minimum(n + 1, max_new_tokens - (last + 1 - prompt_len))
    if eos_ids:
        is_eos = jnp.isin(new, jnp.asarray(eos_ids)) & (idx < count[:, None])
        hit = jnp.any(is_eos, axis=1)
        count = jnp.where(hit, jnp.argmax(is_eos, axis=1) + 1, count)
    else:
        hit = jnp.zeros((B,), bool)
    active = ~done
    count = jnp.where(active, count, 0)
    seq = jax.vmap(lambda r, t, s: jax.lax.dynamic_update_slice(r, t, (s,)))(seq, new, last + 1)
    last = last + count
    generated = last + 1 - prompt_len
    done = done | (active & (hit | (generated >= max_new_tokens)))
    accepted = (idx[:, :k] < n[:, None]) & active[:, None]
    return Committed(seq, last, done, accepted)
