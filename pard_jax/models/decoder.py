"""One Flax Linen decoder for Llama, Qwen2 and Qwen3, used pure-functionally.

`params` (and optionally a KV cache) go in; logits and the updated cache come out. The parameters come in
one of two layouts (`layout.Layout`: stacked for training, per-layer for decoding); the kernels a program
uses are a static `kernels.Kernels` value chosen at the edge for the platform it is compiled for.
Parameters and activations carry logical axis names; `pard_jax.sharding` maps them to mesh axes.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from pard_jax.models import masks
from pard_jax.models.attention import Attention
from pard_jax.models.cache import KVCache
from pard_jax.models.config import ModelConfig
from pard_jax.models.kernels import PLAIN, Kernels
from pard_jax.models.layers import MLP, Dtype, RMSNorm, dense, init, kernel_init, out_major_product
from pard_jax.models.layout import Layout
from pard_jax.models.rope import rope_tables


class Block(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    query_block: int | None = None
    out_major: bool = False
    kernels: Kernels = PLAIN
    emit_hidden: bool = False  # return the layer's output as the second value (scanned: stacked over layers)

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache=None, positions=None):
        cfg = self.cfg
        h, cache = Attention(cfg, self.dtype, query_block=self.query_block, out_major=self.out_major,
                             kernels=self.kernels, name="attn")(
            RMSNorm(cfg.rms_norm_eps, self.dtype, name="input_norm")(x), cos, sin, mask, cache, positions)
        x = x + h
        x = x + MLP(cfg, self.dtype, out_major=self.out_major, kernels=self.kernels, name="mlp")(
            RMSNorm(cfg.rms_norm_eps, self.dtype, name="post_attn_norm")(x))
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        return x, (x if self.emit_hidden else cache)


def hidden_index(i: int, num_layers: int) -> int:
    """A transformers hidden-states index (negative from the end) as 0..num_layers: 0 is the embeddings, l the
    output of layer l, num_layers the final norm of the last layer's output."""
    if not -(num_layers + 1) <= i <= num_layers:
        raise ValueError(f"hidden-state index {i} is outside -{num_layers + 1}..{num_layers}")
    return i % (num_layers + 1)


class Decoder(nn.Module):
    """tokens [B, T] -> logits [B, T, V] (or [B, N, V] at `logits_at`), and the updated caches.

    With `cfg.draft_vocab` (a draft with a sub-vocabulary head) V is len(draft_vocab), over those ids.
    `layout` (see `layout.Layout`): STACKED scans the layers and takes no cache; PER_LAYER loops over them and
    takes per-layer caches. `kernels`: see `kernels.Kernels`.

    `query_block` (no cache) promises that `new_mask` lets no token see a later one (true of causal masks and
    of packed PARD rows): attention then skips the upper triangle of scores, `query_block` queries at a time.

    PARD-2 (`cfg.pard2`): a draft adds `scale * target_proj(features)` to its token embeddings when given
    `features` [B, T, target_dim]; a target returns the hidden states `feature_layers` (transformers' indices,
    `hidden_index`) concatenated per position [B, T, len x D] when asked for them.
    """

    cfg: ModelConfig
    dtype: Dtype = jnp.float32
    remat: bool = False
    layout: Layout = Layout.STACKED
    query_block: int | None = None
    kernels: Kernels = PLAIN

    @nn.compact
    def __call__(self, tokens, positions, *, new_mask=None, caches=None, logits_at=None, features=None,
                 feature_layers: tuple[int, ...] = (), head: bool = True):
        """tokens, positions [B, T] int32 -> (logits, caches, hidden features or None).

        new_mask [B, T, T] (default causal) says which of this call's tokens each token sees (no cache).
        caches: a KVCache per layer (PER_LAYER only); the call's tokens are written at `positions`, which
        must be consecutive in each row, and attend to the cache up to their own position.
        logits_at [B, N] int32 computes logits only at those indices of each row (saves the unembedding).
        features [B, T, target_dim]: a PARD-2 draft's target features per token (zeros: target-independent).
        feature_layers: hidden states to return, at every position (not only `logits_at`).
        head: False returns the final norm's output [B, T, D] in place of the logits (a loss that applies the
        head itself, a chunk at a time: `training.losses`; `head_of` gives the head).
        """
        cfg = self.cfg
        B, T = tokens.shape
        embed = self.param("embed", nn.with_logical_partitioning(init, ("vocab", "embed")),
                           (cfg.vocab_size, cfg.hidden_size))
        x = jnp.take(embed, tokens, axis=0).astype(self.dtype)
        if cfg.pard2 is not None and (features is not None or self.is_initializing()):
            if features is None:
                features = jnp.zeros((B, T, cfg.pard2.target_dim), self.dtype)
            proj = dense(cfg.hidden_size, ("features", "embed"), cfg.pard2.proj_bias, dtype=self.dtype,
                         name="target_proj", out_major=self.layout.out_major, kernels=self.kernels)
            x = x + cfg.pard2.scale * proj(features.astype(self.dtype))
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        wanted = [hidden_index(i, cfg.num_layers) for i in feature_layers]
        hidden = {0: x} if 0 in wanted else {}
        cos, sin = rope_tables(cfg, positions)
        if new_mask is None and caches is None:
            new_mask = masks.causal_mask(B, T)

        block = nn.remat(Block, prevent_cse=False) if self.remat else Block
        if self.layout is Layout.STACKED:
            if caches is not None:
                raise ValueError("a KV cache needs the per-layer layout (Layout.PER_LAYER, `unstack_layers`)")
            layers = nn.scan(
                block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg, self.dtype, query_block=self.query_block, emit_hidden=bool(wanted), name="layers")
            x, outs = layers(x, cos, sin, new_mask)
            hidden.update({i: outs[i - 1] for i in wanted if 0 < i < cfg.num_layers})
        else:
            new_caches = []
            for i in range(cfg.num_layers):
                x, c = block(cfg, self.dtype, query_block=self.query_block, out_major=True, kernels=self.kernels,
                             name=f"layers_{i}")(x, cos, sin, new_mask, None if caches is None else caches[i],
                                                 positions)
                new_caches.append(c)
                if i + 1 in wanted and i + 1 < cfg.num_layers:
                    hidden[i + 1] = x
            caches = None if caches is None else tuple(new_caches)

        final_norm = RMSNorm(cfg.rms_norm_eps, self.dtype, name="final_norm")
        if cfg.num_layers in wanted:
            hidden[cfg.num_layers] = final_norm(x)
        features_out = jnp.concatenate([hidden[i] for i in wanted], axis=-1) if wanted else None
        if logits_at is not None:
            x = jnp.take_along_axis(x, logits_at[:, :, None], axis=1)
        x = final_norm(x)
        if not head and not self.is_initializing():
            return x, caches, features_out
        if cfg.draft_vocab is not None:  # a sub-vocabulary head: logits over cfg.draft_vocab only
            head = self.param("draft_head", nn.with_logical_partitioning(init, ("vocab", "embed")),
                              (len(cfg.draft_vocab), cfg.hidden_size))
        elif cfg.tie_word_embeddings:
            head = embed
        elif self.layout.out_major:
            head = self.param("lm_head", kernel_init(("vocab", "embed")), (cfg.vocab_size, cfg.hidden_size))
        else:  # an untied lm_head stored [D, V]
            head = self.param("lm_head", kernel_init(("embed", "vocab")), (cfg.hidden_size, cfg.vocab_size)).T
        logits = out_major_product(x, head.astype(self.dtype), self.kernels, preferred_element_type=jnp.float32)
        return logits, caches, features_out


def head_of(params: dict, cfg: ModelConfig) -> jax.Array:
    """The output head [V, D] of a params tree (either layout), as `Decoder` applies it."""
    if cfg.draft_vocab is not None:
        return params["draft_head"]
    if cfg.tie_word_embeddings:
        return params["embed"]
    return params["lm_head"].T if Layout.of(params) is Layout.STACKED else params["lm_head"]


def init_params(cfg: ModelConfig, rng: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters in the stacked (training) layout (plain arrays, logical-axis boxes removed)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    variables = Decoder(cfg, dtype).init(rng, tokens, tokens)
    return nn.meta.unbox(variables)["params"]


def param_logical_axes(cfg: ModelConfig, layout: Layout = Layout.STACKED) -> dict:
    """The logical axis names of every parameter, as a tree of PartitionSpecs shaped like params of `layout`."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    abstract = jax.eval_shape(lambda: Decoder(cfg, layout=layout).init(jax.random.key(0), tokens, tokens))
    return nn.get_partition_spec(abstract)["params"]


def _apply(params, cfg, dtype, remat=False, query_block=None, kernels=PLAIN, **kw):
    model = Decoder(cfg, dtype, remat, layout=Layout.of(params), query_block=query_block, kernels=kernels)
    return model.apply({"params": params}, **kw)


def forward(params, cfg: ModelConfig, tokens, positions, *, new_mask=None, dtype=jnp.float32, remat=False,
            logits_at=None, query_block=None, kernels: Kernels = PLAIN, features=None,
            feature_layers: tuple[int, ...] = (), head: bool = True):
    """Uncached forward (either layout): logits [B, T, V] (training, parity checks; with `head` False the final
    norm's output [B, T, D] instead), and with `feature_layers` the hidden features [B, T, F] too.
    `query_block`: see `Decoder` (only for masks under which no token sees a later one). `features`: a PARD-2
    draft's target features."""
    logits, _, hidden = _apply(params, cfg, dtype, remat, query_block, kernels, tokens=tokens, positions=positions,
                               new_mask=new_mask, logits_at=logits_at, features=features,
                               feature_layers=feature_layers, head=head)
    return (logits, hidden) if feature_layers else logits


def forward_cached(params, cfg: ModelConfig, tokens, cache: KVCache, start, *, dtype=jnp.float32, logits_at=None,
                   kernels: Kernels = PLAIN, features=None, feature_layers: tuple[int, ...] = ()):
    """Run T new tokens of each row at positions start[b] .. start[b]+T-1 against the cache.

    `params` in the per-layer layout (`layout.unstack_layers`). The call's keys/values are written at those
    positions; each token sees the cache entries up to its own position. Returns logits [B, T, V] (or
    [B, N, V] with `logits_at` [B, N]) and the new cache, and with `feature_layers` the hidden features
    [B, T, F] at every position. `features`: a PARD-2 draft's target features [B, T, target_dim].
    """
    B, T = tokens.shape
    positions = start[:, None] + jnp.arange(T, dtype=jnp.int32)[None, :]
    if Layout.of(params) is Layout.STACKED:
        raise ValueError("forward_cached needs the per-layer layout; convert once with unstack_layers(params)")
    logits, cache, hidden = _apply(params, cfg, dtype, kernels=kernels, tokens=tokens, positions=positions,
                                   caches=cache, logits_at=logits_at, features=features,
                                   feature_layers=feature_layers)
    return (logits, cache, hidden) if feature_layers else (logits, cache)


def prefill(params, cfg: ModelConfig, tokens, cache: KVCache, *, chunk: int | None = None,
            dtype=jnp.float32, kernels: Kernels = PLAIN, feature_layers: tuple[int, ...] = (),
            keep_from=None, keep: int = 0):
    """Write the keys/values of right-padded prompts [B, P] at positions 0..P-1 (causal; no logits needed).

    With `chunk` < P (P a multiple of it) the prompt goes in `chunk` tokens at a time, each chunk attending to
    the cache written so far and to itself: one compiled chunk serves the whole prompt, and attention scores
    take [chunk, capacity] per head instead of [P, capacity]. Entries past a row's real length are garbage
    that the row's later writes overwrite.

    With `feature_layers` it also returns the hidden features [B, keep, F] at positions keep_from[b] + i
    (zeros where that position is negative): a PARD-2 target's features for the first draft window.
    """
    B, P = tokens.shape
    at = jnp.zeros((B, 1), jnp.int32)

    def run(part, start, carry):
        cache, kept = carry
        out = forward_cached(params, cfg, part, cache, start, dtype=dtype, logits_at=at, kernels=kernels,
                             feature_layers=feature_layers)
        if not feature_layers:
            return out[1], kept
        offset = keep_from[:, None] + jnp.arange(keep)[None, :] - start[:, None]  # [B, keep] into this part
        inside = (offset >= 0) & (offset < part.shape[1])
        got = jnp.take_along_axis(out[2], jnp.clip(offset, 0, part.shape[1] - 1)[..., None], axis=1)
        return out[1], jnp.where(inside[..., None], got.astype(kept.dtype), kept)

    kept = None
    if feature_layers:
        width = len(feature_layers) * cfg.hidden_size
        kept = jnp.zeros((B, keep, width), dtype)
    if chunk is None or P <= chunk:
        cache, kept = run(tokens, jnp.zeros((B,), jnp.int32), (cache, kept))
    else:
        if P % chunk:
            raise ValueError(f"a chunked prefill needs a prompt length ({P}) that is a multiple of the chunk "
                             f"({chunk})")

        def one_chunk(i, carry):
            part = jax.lax.dynamic_slice_in_dim(tokens, i * chunk, chunk, axis=1)
            return run(part, jnp.full((B,), i * chunk, jnp.int32), carry)

        cache, kept = jax.lax.fori_loop(0, P // chunk, one_chunk, (cache, kept))
    return (cache, kept) if feature_layers else cache
