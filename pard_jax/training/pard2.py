"""PARD-2's training objective (arXiv 2605.08632) on packed COD rows: the frozen target's features, logits and
CAT weights for every kept token, and the loss ce_alpha x CE + kd_alpha x KL(target || draft).

The target runs inside the step on each row's real sequences only: the block-0 tokens of its segments,
gathered into a [B, base_length] view (`base_view`; the packer keeps each row's block-0 tokens within
`base_length`). A kept token (block j, position t, anchor a = t - j) of a segment then reads
- its feature f_{a-1}: the target's hidden states at the position before its anchor (zeros at a = 0, and for
  segments whose features are dropped, so the draft keeps working without them), as at inference, where mask
  tokens repeat the last real token's feature;
- the target's distribution at position t (the one for x_{t+1}, this token's label) for the KD term;
- its CAT weight: the target's probability of the true tokens x_{a+1} .. x_t, i.e. of getting this far into
  the block (1 in block 0).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pard_jax.models import masks
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import forward, head_of
from pard_jax.training import losses


@dataclasses.dataclass(frozen=True)
class Objective:
    """The static settings of the PARD-2 loss (hashable)."""

    target_cfg: ModelConfig
    base_length: int  # block-0 tokens per row the target runs on
    ce_alpha: float = 0.1
    kd_alpha: float = 1.0
    kd_temperature: float = 1.0
    cat: bool = True  # weight each token by CAT (else 1)
    precondition: bool = False  # scale target_proj's updates per feature (`proj_update_scale`)
    proj_lr_multiplier: float = 1.0  # target_proj's learning rate as a multiple of the draft's


def base_view(batch: dict[str, jax.Array], base_length: int):
    """The rows' block-0 tokens, in row order, as [B, base_length] (tokens, positions, segments; padding has
    segment 0), and for every row token the base slot of its segment's position 0."""
    is_base = (batch["blocks"] == 0) & (batch["segments"] > 0)
    order = jnp.argsort(~is_base, axis=1, stable=True)[:, :base_length]
    take = lambda x: jnp.take_along_axis(x, order, axis=1)  # noqa: E731
    valid = jnp.arange(base_length)[None, :] < jnp.sum(is_base, axis=1, keepdims=True)
    segments = jnp.where(valid, take(batch["segments"]), 0)
    slot = jnp.cumsum(is_base, axis=1) - 1  # a block-0 token's base slot
    seg = batch["segments"]
    starts = jnp.concatenate([jnp.ones_like(seg[:, :1], bool), seg[:, 1:] != seg[:, :-1]], axis=1)
    index = jnp.arange(seg.shape[1], dtype=jnp.int32)[None, :]
    first = jax.lax.cummax(jnp.where(starts, index, 0), axis=1)  # a segment starts with its position 0
    return take(batch["tokens"]), take(batch["positions"]), segments, jnp.take_along_axis(slot, first, axis=1)


def target_signals(target_params, obj: Objective, batch, feature_layers: tuple[int, ...], *, dtype, query_block,
                   teacher: bool = True):
    """Per row token: (features [B, T, F], the target's final hidden state at its position [B, T, D_target] (its
    distribution for this token's label comes from it, a chunk at a time: `ce_and_kd`), CAT weight [B, T]);
    without `teacher` only the features (the rest None)."""
    tokens, positions, segments, slot0 = base_view(batch, obj.base_length)
    zeros = jnp.zeros_like(tokens)
    mask = masks.pard_attention_mask(segments, zeros, positions, positions)  # causal within each sequence
    hidden, feats = forward(target_params, obj.target_cfg, tokens, positions, new_mask=mask, dtype=dtype,
                            query_block=query_block, feature_layers=feature_layers, head=False)
    hidden, feats = jax.lax.stop_gradient(hidden), jax.lax.stop_gradient(feats)

    def at(x, s):
        s = jnp.clip(s, 0, obj.base_length - 1)
        return jnp.take_along_axis(x, s.reshape(s.shape + (1,) * (x.ndim - 2)), axis=1)

    anchor, t = batch["anchors"], batch["positions"]
    has_feature = (anchor >= 1) & (batch["segments"] > 0) & (batch.get("features", 1) > 0)
    features = jnp.where(has_feature[..., None], at(feats, slot0 + anchor - 1), 0.0)
    if not teacher:
        return features, None, None
    # log p(x_{u+1} | x_<=u) at each base slot u, summed up to each slot: CAT in log space
    nxt = jnp.concatenate([tokens[:, 1:], zeros[:, :1]], axis=1)
    same = jnp.concatenate([segments[:, 1:] == segments[:, :-1], jnp.zeros_like(segments[:, :1], bool)], axis=1)
    head = head_of(target_params, obj.target_cfg)
    gold = losses.map_chunks(losses.cross_entropy(dtype), head, hidden, jnp.where(same & (segments > 0), nxt, -1))
    gold = -gold["nll"]  # 0 where there is no next token of the same sequence
    before = jnp.cumsum(gold, axis=1) - gold  # sum over slots < s
    cat = jnp.exp(at(before, slot0 + t) - at(before, slot0 + anchor)) if obj.cat else jnp.ones(t.shape)
    return features, at(hidden, slot0 + t), cat


def ce_and_kd(dtype, target_head: jax.Array, temperature: float, vocab: tuple[int, ...] | None):
    """The per-token function for `losses.map_chunks`: (draft hidden, draft head, labels, the target's hidden) ->
    {"nll": cross-entropy against the label, "kd": KL(target || draft) at `temperature` x T^2, "hit": argmax ==
    label}. A sub-vocabulary draft's KL is taken over its ids (the teacher's mass elsewhere cannot be matched)."""
    ids = None if vocab is None else jnp.asarray(vocab)

    def fn(hidden, head, labels, target_hidden):
        logits = losses.logits_of(hidden, head, dtype)
        teacher = jax.nn.log_softmax(losses.logits_of(target_hidden, target_head, dtype) / temperature, axis=-1)
        if ids is not None:
            teacher = teacher[..., ids]
        student = jax.nn.log_softmax(logits / temperature, axis=-1)
        kd = jnp.sum(jnp.exp(teacher) * (teacher - student), axis=-1) * temperature ** 2
        return dict(losses.token_cross_entropy(logits, labels), kd=jnp.where(labels >= 0, kd, 0.0))
    return fn


def feature_sums(features: jax.Array) -> dict[str, jax.Array]:
    """Sums for `proj_update_scale` over a batch's row tokens [B, T, F]: squares per feature, and the tokens
    that have features (the ones target_proj's gradient comes from)."""
    has = jnp.any(features != 0, axis=-1)
    return {"feature_sq": jnp.sum(jnp.square(features.astype(jnp.float32)), axis=(0, 1)),
            "featured": jnp.sum(has.astype(jnp.float32))}


def proj_update_scale(feature_sq: jax.Array, featured: jax.Array) -> jax.Array:
    """[F] factors for target_proj's update rows: median RMS / each feature's RMS (floored at 1e-3 x the median).
    Adam steps each weight by about the learning rate, so a feature's contribution moves in proportion to its
    scale; these factors make that pace the same for every feature, as training on features divided by their
    RMS would, while the weights stay those of the raw features the checkpoint format expects."""
    rms = jnp.sqrt(feature_sq / jnp.maximum(featured, 1.0))
    median = jnp.median(rms)
    return jnp.where(median > 0, median / jnp.maximum(rms, 1e-3 * median), 1.0)
