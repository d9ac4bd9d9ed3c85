"""One Flax Linen decoder for Llama, Qwen2 and Qwen3, used pure-functionally.

`params` (and optionally a KV cache) go in; logits and the updated cache come out. Training runs the layers
as an `nn.scan` over stacked weights (compile time does not grow with depth); decoding runs them as a Python
loop over per-layer weights and caches (see `Decoder`). Parameters and activations carry logical axis names;
`pard_jax.sharding` maps them to mesh axes.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from pard_jax.models import masks
from pard_jax.models.cache import KVCache, write
from pard_jax.models.config import ModelConfig

Dtype = Any
_init = nn.initializers.normal(stddev=0.02)


def live_block(capacity: int) -> int | None:
    """How attention reads a cache of `capacity` positions: in blocks of this many, only those up to the newest
    position in the batch (`live_attention`: cost follows the live context, not the capacity), or, for None, in
    one masked product over all of it.

    Measured on 2 CPU cores, SmolLM2, calls alternating in one process (median ms, whole product -> blocks):
    a 384-position cache, 1 token at position 40 / ~150 / 370: 41.9 -> 35.4, 46.6 -> 42.9, 49.0 -> 45.1; 5 tokens
    mid / end: 74.3 -> 70.4, 67.1 -> 67.0; batch 64 of 1 token in a 320-position cache: ~420 -> ~300; a prefill
    of 16 x 64 tokens 1877 -> 1460. In a 4224-position cache 512-position blocks win for 1 token mid-cache
    (192 -> 81) but lose for 5 tokens at the end (132 -> 171), so caches between 1024 and 2048 stay whole.
    Caches under 256 positions stay whole too: a few blocks save little, and each layer's loop adds compile time.

    On a GPU every cache is read whole: the block loop's trip count depends on the data, and XLA's GPU backend
    copies such a loop's condition to the host before each iteration, a wait per block and layer. On
    one H200 (Llama-3.1-8B shapes, bfloat16) an AR iteration of the generation loop, whose 512-position cache
    took this loop, cost 1.85 ms more than an AR step over a whole 1088-position cache (4.79 ms); whether the
    whole read removes all of that is not measured yet.
    """
    if jax.default_backend() == "gpu":
        return None
    if 256 <= capacity <= 1024:
        return 64
    return 512 if capacity > 2048 else None


def _kernel(axes):
    return nn.with_logical_partitioning(_init, axes)


def rope_inv_freq(cfg: ModelConfig) -> np.ndarray:
    """[Dh/2] inverse frequencies, with Llama-3.1 ('llama3') scaling when configured."""
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2, dtype=np.float64) / cfg.head_dim))
    s = cfg.rope_scaling
    if s is None:
        return inv.astype(np.float32)
    low_wavelen = s.original_max_position_embeddings / s.low_freq_factor
    high_wavelen = s.original_max_position_embeddings / s.high_freq_factor
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > low_wavelen, inv / s.factor, inv)
    smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(cfg: ModelConfig, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos, sin [B, T, Dh] for integer positions [B, T] (HF's half-rotation layout)."""
    freqs = positions[..., None].astype(jnp.float32) * jnp.asarray(rope_inv_freq(cfg))
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x [B, T, H, Dh] rotated by position."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    return (x.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin).astype(x.dtype)


class RMSNorm(nn.Module):
    eps: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)), (x.shape[-1],))
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (scale * xf.astype(self.dtype)).astype(self.dtype)


FEW_ROWS = 64  # products of at most this many rows take `out_major_product`'s few-row form on CPU


def out_major(path: str) -> bool:
    """Whether a param ("/"-joined path, either layout) is one the decoding layout stores [out, in]: the
    projection kernels and an untied lm_head (HF's own orientation). Flax's [in, out] is the training layout."""
    return path == "lm_head" or path.endswith("/kernel")


def out_major_product(x: jax.Array, w: jax.Array, preferred_element_type=None) -> jax.Array:
    """x [..., in] times a weight stored [out, in] -> [..., out].

    On CPU a product of a few rows (a decode step, a verify call) runs much faster as w @ x^T, with the weight
    as the left operand and the output [out, rows], than as x @ w^T: measured on 2 cores of an AMD EPYC, 60
    products of [T, 576] x 576x1536 took 21-24 ms at 3 rows against 36-39 ms (1-2 rows: about the same), and a
    whole SmolLM2 verify of 3 / 5 tokens went from 87 / 101 ms to 56 / 66 ms. The barrier keeps XLA from
    folding the small transpose back into the product (which restores the slow form); larger products and
    other backends take the plain form.
    """
    rows = math.prod(x.shape[:-1])
    if rows > FEW_ROWS or jax.default_backend() != "cpu":
        return jnp.einsum("...i,oi->...o", x, w, preferred_element_type=preferred_element_type)
    y = jnp.einsum("oi,ni->on", w, x.reshape(rows, x.shape[-1]), preferred_element_type=preferred_element_type)
    return jax.lax.optimization_barrier(y).T.reshape(*x.shape[:-1], w.shape[0])


class OutMajorDense(nn.Module):
    """nn.Dense with its kernel stored [out, in] (the decoding layout): the same params, "kernel" transposed."""

    features: int
    axes: tuple[str, str]  # logical axes (in, out), as nn.Dense's kernel
    use_bias: bool
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", _kernel(self.axes[::-1]), (self.features, x.shape[-1]))
        y = out_major_product(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.axes[-1:]),
                              (self.features,))
            y = y + bias.astype(self.dtype)
        return y


def _dense(features, axes, use_bias, *, dtype, name, out_major=False):
    if out_major:
        return OutMajorDense(features, axes, use_bias, dtype, name=name)
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=_kernel(axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[-1:]), name=name)


class Attention(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    query_block: int | None = None  # see `Decoder`
    out_major: bool = False  # kernels stored [out, in] (the decoding layout, see `Decoder`)

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache=None, positions=None):
        """x [B, T, D] -> (out [B, T, D], cache).

        Without a cache, `mask` [B, T, T] says which of this call's tokens each token sees (training).
        With a cache (k, v) [B, Hkv, S, Dh] of one layer, this call's keys/values are first written at each
        row's `positions` (consecutive, [B, T]), then every token attends to the cache entries at positions
        up to its own: entries past it are stale (rolled back, or not yet rewritten) and hidden. Returns the
        updated cache.
        """
        cfg = self.cfg
        B, T, _ = x.shape
        H, Hkv, Dh = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        dense = functools.partial(_dense, dtype=self.dtype, out_major=self.out_major)
        q = dense(H * Dh, ("embed", "q_heads"), cfg.qkv_bias, name="q_proj")(x).reshape(B, T, H, Dh)
        k = dense(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, name="k_proj")(x).reshape(B, T, Hkv, Dh)
        v = dense(Hkv * Dh, ("embed", "kv_heads"), cfg.qkv_bias, name="v_proj")(x).reshape(B, T, Hkv, Dh)
        if cfg.qk_norm:
            q = RMSNorm(cfg.rms_norm_eps, self.dtype, name="q_norm")(q)
            k = RMSNorm(cfg.rms_norm_eps, self.dtype, name="k_norm")(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q = nn.with_logical_constraint(q, ("batch", "length", "act_heads", "head_dim"))

        # Heads-major: query head h = kv head h // G, group member h % G (GQA); [B, Hkv, G, T, Dh].
        G = H // Hkv
        qg = q.reshape(B, T, Hkv, G, Dh).transpose(0, 2, 3, 1, 4) * (1.0 / math.sqrt(Dh))
        k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, Hkv, T, Dh]
        if cache is not None:
            cache = write(cache, k, v, positions[:, 0])
            k, v = cache.k.astype(self.dtype), cache.v.astype(self.dtype)
            block = live_block(cache.capacity)
            if block is not None:
                out = live_attention(qg, k, v, positions, block)
            else:
                out = attend(qg, k, v, masks.cache_mask(positions, cache.capacity))
        elif self.query_block:
            out = attend_lower_triangular(qg, k, v, mask, self.query_block)
        else:
            out = attend(qg, k, v, mask)
        out = out.astype(self.dtype).transpose(0, 3, 1, 2, 4).reshape(B, T, H * Dh)
        out = dense(cfg.hidden_size, ("q_heads", "embed"), cfg.o_bias, name="o_proj")(out)
        return out, cache


def attend(qg, k, v, mask):
    """Scaled queries qg [B, Hkv, G, T, Dh] over keys/values [B, Hkv, S, Dh] where mask [B, T, S] allows."""
    scores = jnp.einsum("bkgtd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bksd->bkgtd", probs, v)


def attend_lower_triangular(qg, k, v, mask, block: int):
    """`attend` for a mask [B, T, T] under which no query sees a later key: the queries go `block` at a time,
    each block over the keys up to its own end, which skips the upper triangle of scores (about 3/8 of them
    at 4 blocks). Equal to `attend` for every query that sees some key."""
    T = qg.shape[3]
    outs = [attend(qg[:, :, :, i:i + block], k[:, :, :i + block], v[:, :, :i + block], mask[:, i:i + block, :i + block])
            for i in range(0, T, block)]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=3)


def live_attention(qg, k, v, positions, block: int):
    """`attend` over a cache, reading only its blocks of `block` positions up to the newest query position of
    the batch: a running (max, sum, weighted values) softmax over blocks, as in flash decoding. Equal to the
    masked product over the whole cache, at a cost that follows the live context."""
    S = k.shape[2]
    low = jnp.finfo(jnp.float32).min

    def one_block(i, carry):
        m, total, acc = carry
        begin = jnp.minimum(i * block, S - block)  # the last block may overlap the one before it,
        kb = jax.lax.dynamic_slice_in_dim(k, begin, block, axis=2)
        vb = jax.lax.dynamic_slice_in_dim(v, begin, block, axis=2)
        key_pos = (begin + jnp.arange(block))[None, None, :]
        mask = (key_pos >= i * block) & (key_pos <= positions[:, :, None])  # ...so each key counts once
        scores = jnp.einsum("bkgtd,bksd->bkgts", qg, kb, preferred_element_type=jnp.float32)
        scores = jnp.where(mask[:, None, None], scores, low)
        new_m = jnp.maximum(m, scores.max(axis=-1))
        scale = jnp.exp(m - new_m)
        p = jnp.exp(scores - new_m[..., None])
        pv = jnp.einsum("bkgts,bksd->bkgtd", p.astype(v.dtype), vb, preferred_element_type=jnp.float32)
        return new_m, total * scale + p.sum(axis=-1), acc * scale[..., None] + pv

    shape = qg.shape[:-1]
    init = (jnp.full(shape, low, jnp.float32), jnp.zeros(shape, jnp.float32), jnp.zeros(qg.shape, jnp.float32))
    live = jnp.max(positions) // block + 1
    _, total, acc = jax.lax.fori_loop(0, live, one_block, init)
    return acc / total[..., None]


class MLP(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    out_major: bool = False

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        dense = functools.partial(_dense, dtype=self.dtype, out_major=self.out_major)
        gate = dense(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, name="gate_proj")(x)
        up = dense(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, name="up_proj")(x)
        h = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "act_mlp"))
        return dense(cfg.hidden_size, ("mlp", "embed"), cfg.mlp_bias, name="down_proj")(h)


class Block(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    query_block: int | None = None
    out_major: bool = False

    @nn.compact
    def __call__(self, x, cos, sin, mask, cache=None, positions=None):
        h, cache = Attention(self.cfg, self.dtype, self.query_block, self.out_major, name="attn")(
            RMSNorm(self.cfg.rms_norm_eps, self.dtype, name="input_norm")(x), cos, sin, mask, cache, positions)
        x = x + h
        x = x + MLP(self.cfg, self.dtype, self.out_major, name="mlp")(
            RMSNorm(self.cfg.rms_norm_eps, self.dtype, name="post_attn_norm")(x))
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        return x, cache


class Decoder(nn.Module):
    """tokens [B, T] -> logits [B, T, V] (or [B, N, V] at `logits_at`), and the updated caches.

    With `cfg.draft_vocab` (a draft with a sub-vocabulary head) V is len(draft_vocab), over those ids.

    Two layouts of the same layers. `scan=True` (training): one `nn.scan` over weights stacked under
    `layers` ([L, ...] each), so compile time does not grow with depth; no cache. `scan=False` (decoding):
    a Python loop over separate per-layer weights `layers_0` .. `layers_{L-1}` and per-layer caches. Slicing a
    layer out of a stacked array inside the loop copies it, which cost a third of a decode step on CPU;
    separate buffers are read in place. The decoding layout also stores every projection kernel and an untied
    lm_head [out, in] (`out_major`), the orientation few-row products want (`out_major_product`).
    `stack_layers` / `unstack_layers` convert between the two.

    `query_block` (no cache) promises that `new_mask` lets no token see a later one (true of causal masks and
    of packed PARD rows): attention then skips the upper triangle of scores, `query_block` queries at a time.
    """

    cfg: ModelConfig
    dtype: Dtype = jnp.float32
    remat: bool = False
    scan: bool = True
    query_block: int | None = None

    @nn.compact
    def __call__(self, tokens, positions, *, new_mask=None, caches=None, logits_at=None):
        """tokens, positions [B, T] int32.

        new_mask [B, T, T] (default causal) says which of this call's tokens each token sees (no cache).
        caches: a KVCache per layer (scan=False only); the call's tokens are written at `positions`, which
        must be consecutive in each row, and attend to the cache up to their own position.
        logits_at [B, N] int32 computes logits only at those indices of each row (saves the unembedding).
        """
        cfg = self.cfg
        B, T = tokens.shape
        embed = self.param("embed", nn.with_logical_partitioning(_init, ("vocab", "embed")),
                           (cfg.vocab_size, cfg.hidden_size))
        x = jnp.take(embed, tokens, axis=0).astype(self.dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        cos, sin = rope_tables(cfg, positions)
        if new_mask is None and caches is None:
            new_mask = masks.causal_mask(B, T)

        block = nn.remat(Block, prevent_cse=False) if self.remat else Block
        if self.scan:
            if caches is not None:
                raise ValueError("a KV cache needs the per-layer (unstacked) layout: Decoder(scan=False)")
            layers = nn.scan(
                block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=cfg.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg, self.dtype, self.query_block, name="layers")
            x, _ = layers(x, cos, sin, new_mask)
        else:
            new_caches = []
            for i in range(cfg.num_layers):
                x, c = block(cfg, self.dtype, self.query_block, True, name=f"layers_{i}")(
                    x, cos, sin, new_mask, None if caches is None else caches[i], positions)
                new_caches.append(c)
            caches = None if caches is None else tuple(new_caches)

        if logits_at is not None:
            x = jnp.take_along_axis(x, logits_at[:, :, None], axis=1)
        x = RMSNorm(cfg.rms_norm_eps, self.dtype, name="final_norm")(x)
        if cfg.draft_vocab is not None:  # a sub-vocabulary head: logits over cfg.draft_vocab only
            head = self.param("draft_head", nn.with_logical_partitioning(_init, ("vocab", "embed")),
                              (len(cfg.draft_vocab), cfg.hidden_size))
        elif cfg.tie_word_embeddings:
            head = embed
        elif self.scan:  # the training layout stores an untied lm_head [D, V], the decoding layout [V, D]
            head = self.param("lm_head", _kernel(("embed", "vocab")), (cfg.hidden_size, cfg.vocab_size)).T
        else:
            head = self.param("lm_head", _kernel(("vocab", "embed")), (cfg.vocab_size, cfg.hidden_size))
        head = head.astype(self.dtype)  # [V, D]
        if self.scan:
            logits = jnp.einsum("btd,vd->btv", x, head, preferred_element_type=jnp.float32)
        else:
            logits = out_major_product(x, head, preferred_element_type=jnp.float32)
        return logits, caches


def init_params(cfg: ModelConfig, rng: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters in the stacked (training) layout (plain arrays, logical-axis boxes removed)."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    variables = Decoder(cfg, dtype).init(rng, tokens, tokens)
    return nn.meta.unbox(variables)["params"]


def param_logical_axes(cfg: ModelConfig, scan: bool = True) -> dict:
    """The logical axis names of every parameter, as a tree of PartitionSpecs shaped like params: of the stacked
    (training) layout, or with `scan=False` of the per-layer (decoding) layout."""
    tokens = jnp.zeros((1, 1), jnp.int32)
    abstract = jax.eval_shape(lambda: Decoder(cfg, scan=scan).init(jax.random.key(0), tokens, tokens))
    return nn.get_partition_spec(abstract)["params"]


def is_stacked(params: dict) -> bool:
    return "layers" in params


def _transpose_out_major(params: dict) -> dict:
    """Every `out_major` param transposed (both ways between the layouts' orientations)."""
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict({k: v.T if out_major(k) else v for k, v in flat.items()}, sep="/")


def unstack_layers(params: dict) -> dict:
    """The training layout -> the decoding layout: stacked `layers` ([L, ...] leaves) -> separate `layers_0` ..
    `layers_{L-1}`, and the `out_major` params transposed to [out, in].

    Each layer's arrays become buffers of their own (a one-time copy), which the decode step reads in place.
    """
    if not is_stacked(params):
        return params
    stacked = params["layers"]
    num_layers = jax.tree.leaves(stacked)[0].shape[0]
    out = {k: v for k, v in params.items() if k != "layers"}
    for i in range(num_layers):
        out[f"layers_{i}"] = jax.tree.map(lambda a, i=i: a[i], stacked)
    return _transpose_out_major(out)


def stack_layers(params: dict) -> dict:
    """The inverse of `unstack_layers`."""
    if is_stacked(params):
        return params
    params = _transpose_out_major(params)
    names = sorted((k for k in params if k.startswith("layers_")), key=lambda k: int(k.split("_")[1]))
    out = {k: v for k, v in params.items() if not k.startswith("layers_")}
    out["layers"] = jax.tree.map(lambda *a: jnp.stack(a), *[params[n] for n in names])
    return out


def _apply(params, cfg, dtype, remat=False, query_block=None, **kw):
    return Decoder(cfg, dtype, remat, scan=is_stacked(params), query_block=query_block).apply({"params": params}, **kw)


def forward(params, cfg: ModelConfig, tokens, positions, *, new_mask=None, dtype=jnp.float32, remat=False,
            logits_at=None, query_block=None):
    """Uncached forward (either layout): logits [B, T, V] (training, parity checks). `query_block`: see
    `Decoder` (only for masks under which no token sees a later one)."""
    logits, _ = _apply(params, cfg, dtype, remat, query_block, tokens=tokens, positions=positions,
                       new_mask=new_mask, logits_at=logits_at)
    return logits


def forward_cached(params, cfg: ModelConfig, tokens, cache: KVCache, start, *, dtype=jnp.float32, logits_at=None):
    """Run T new tokens of each row at positions start[b] .. start[b]+T-1 against the cache.

    `params` in the per-layer layout (`unstack_layers`). The call's keys/values are written at those
    positions; each token sees the cache entries up to its own position. Returns logits [B, T, V] (or
    [B, N, V] with `logits_at` [B, N]) and the new cache.
    """
    B, T = tokens.shape
    positions = start[:, None] + jnp.arange(T, dtype=jnp.int32)[None, :]
    if is_stacked(params):
        raise ValueError("forward_cached needs the per-layer layout; convert once with unstack_layers(params)")
    logits, caches = _apply(params, cfg, dtype, tokens=tokens, positions=positions, caches=cache,
                            logits_at=logits_at)
    return logits, caches


def prefill(params, cfg: ModelConfig, tokens, cache: KVCache, *, chunk: int | None = None,
            dtype=jnp.float32) -> KVCache:
    """Write the keys/values of right-padded prompts [B, P] at positions 0..P-1 (causal; no logits needed).

    With `chunk` < P (P a multiple of it) the prompt goes in `chunk` tokens at a time, each chunk attending to
    the cache written so far and to itself: one compiled chunk serves the whole prompt, and attention scores
    take [chunk, capacity] per head instead of [P, capacity]. Entries past a row's real length are garbage
    that the row's later writes overwrite.
    """
    B, P = tokens.shape
    at = jnp.zeros((B, 1), jnp.int32)
    if chunk is None or P <= chunk:
        return forward_cached(params, cfg, tokens, cache, jnp.zeros((B,), jnp.int32), dtype=dtype, logits_at=at)[1]
    if P % chunk:
        raise ValueError(f"a chunked prefill needs a prompt length ({P}) that is a multiple of the chunk ({chunk})")

    def one_chunk(i, cache):
        part = jax.lax.dynamic_slice_in_dim(tokens, i * chunk, chunk, axis=1)
        start = jnp.full((B,), i * chunk, jnp.int32)
        return forward_cached(params, cfg, part, cache, start, dtype=dtype, logits_at=at)[1]

    return jax.lax.fori_loop(0, P // chunk, one_chunk, cache)
