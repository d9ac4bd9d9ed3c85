"""PARD training: loss and per-block accuracy on packed rows, the optax optimizer, the jitted sharded step.

A batch is a dict of int32 arrays [..., B, T] with the fields of `training.packing.ROW_FIELDS`: tokens, positions,
blocks, anchors, segments, labels (-1 = no target). The attention mask comes from that metadata inside the
jitted program (`masks.pard_attention_mask`); no [T, T] mask crosses from the host.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pard_jax import sharding
from pard_jax.models import masks
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import forward, head_of
from pard_jax.training import losses, pard2

# Packed PARD rows let no token see a later one (block 0 of an example precedes its mask blocks, each in
# position order: `training.cod.kept_tokens`), so attention runs QUERY_BLOCK queries at a time over the keys
# up to each block's end, skipping the upper triangle of scores (docs/kernels.md).
QUERY_BLOCK = 256


def head_labels(cfg: ModelConfig, labels: jax.Array) -> jax.Array:
    """Labels as indices of the model's output layer: a sub-vocabulary head predicts indices into
    cfg.draft_vocab, and other targets, which it cannot propose, carry no loss (-1)."""
    if cfg.draft_vocab is None:
        return labels
    index = jnp.full((cfg.vocab_size,), -1, jnp.int32).at[jnp.asarray(cfg.draft_vocab)].set(
        jnp.arange(len(cfg.draft_vocab), dtype=jnp.int32))
    return jnp.where(labels >= 0, index[jnp.maximum(labels, 0)], -1)


def loss_sums(params, cfg: ModelConfig, batch: dict[str, jax.Array], k: int, *, dtype=jnp.float32,
              remat: bool = False, query_block: int | None = QUERY_BLOCK, target_params=None,
              objective: pard2.Objective | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Summed loss over labelled tokens of a [B, T] batch, and counts for metrics.

    PARD: cross-entropy. PARD-2 (`objective`, with the frozen target's `target_params`): ce_alpha x CE +
    kd_alpha x KL(target || draft), each token weighted by CAT (`training.pard2`).

    Returns (loss_sum, stats) with stats: weight (what the loss is a mean over: labelled tokens, or their CAT
    weights), tokens (labelled tokens), ce / kd (weighted sums of each term), correct_by_block /
    count_by_block [k] (argmax hits and labelled tokens per block; block j's ratio is the draft's hit rate at
    position j+1), positions (real sequence tokens: block 0, not padding), kept (all non-padding tokens); PARD-2
    adds correct_by_block_td / count_by_block_td (the sequences that kept their features) and, to precondition
    target_proj, feature_sq / featured. Sums, not means, so that micro-batches and devices add up exactly.
    """
    mask = masks.pard_attention_mask(batch["segments"], batch["blocks"], batch["anchors"], batch["positions"])
    features = target_hidden = None
    if objective is not None:
        features, target_hidden, cat = pard2.target_signals(target_params, objective, batch, cfg.pard2.target_layers,
                                                            dtype=dtype, query_block=query_block)
    # The final hidden states only: the head runs a chunk of positions at a time (`training.losses`), so the
    # float32 logits of a whole row over the vocabulary never exist at once.
    hidden = forward(params, cfg, batch["tokens"], batch["positions"], new_mask=mask, dtype=dtype, remat=remat,
                     query_block=query_block, features=features, head=False)
    labels = head_labels(cfg, batch["labels"])
    valid = labels >= 0
    if objective is None:
        per_token = losses.map_chunks(losses.cross_entropy(dtype), head_of(params, cfg), hidden, labels)
        weight, ce = valid.astype(jnp.float32), per_token["nll"]
        kd = jnp.zeros_like(ce)
        loss_sum = jnp.sum(ce)
    else:
        fn = pard2.ce_and_kd(dtype, head_of(target_params, objective.target_cfg), objective.kd_temperature,
                             cfg.draft_vocab)
        per_token = losses.map_chunks(fn, head_of(params, cfg), hidden, labels, target_hidden)
        weight, ce, kd = jnp.where(valid, cat, 0.0), per_token["nll"], per_token["kd"]
        loss_sum = jnp.sum(weight * (objective.ce_alpha * ce + objective.kd_alpha * kd))
    hit = per_token["hit"]
    onehot = jax.nn.one_hot(batch["blocks"], k, dtype=jnp.float32)  # [B, T, k]
    real = batch["segments"] > 0
    stats = {
        "weight": jnp.sum(weight),
        "tokens": jnp.sum(valid.astype(jnp.float32)),
        "ce": jnp.sum(weight * ce),
        "kd": jnp.sum(weight * kd),
        "correct_by_block": jnp.einsum("btk,bt->k", onehot, hit.astype(jnp.float32)),
        "count_by_block": jnp.einsum("btk,bt->k", onehot, valid.astype(jnp.float32)),
        "positions": jnp.sum((real & (batch["blocks"] == 0)).astype(jnp.float32)),
        "kept": jnp.sum(real.astype(jnp.float32)),
    }
    if objective is not None:  # the same counts over the sequences that kept their features (TD)
        featured = (batch["features"] > 0) & real if "features" in batch else real
        stats["correct_by_block_td"] = jnp.einsum("btk,bt->k", onehot, (hit & featured).astype(jnp.float32))
        stats["count_by_block_td"] = jnp.einsum("btk,bt->k", onehot, (valid & featured).astype(jnp.float32))
        if objective.precondition:
            stats.update(pard2.feature_sums(features))
    return loss_sum, stats


def metrics_from_sums(loss_sum, stats) -> dict[str, jax.Array]:
    """Sums -> metrics: loss (the weighted mean), ce and kd (weighted means of each term), accuracy_by_block
    [k], and the counts (PARD-2: hits_by_block_td / _ti)."""
    weight = jnp.maximum(stats["weight"], 1e-6)
    out = {
        "loss": loss_sum / weight, "ce": stats["ce"] / weight, "kd": stats["kd"] / weight,
        "accuracy_by_block": stats["correct_by_block"] / jnp.maximum(stats["count_by_block"], 1.0),
        "tokens": stats["tokens"], "positions": stats["positions"], "kept": stats["kept"],
    }
    if "correct_by_block_td" in stats:  # PARD-2: hits and counts [2, k] of the sequences with features (TD) and
        # without (TI), as sums: a step may hold no TI sequence, so a log record divides the sums of its steps
        out["hits_by_block_td"] = jnp.stack([stats["correct_by_block_td"], stats["count_by_block_td"]])
        out["hits_by_block_ti"] = jnp.stack([stats["correct_by_block"] - stats["correct_by_block_td"],
                                             stats["count_by_block"] - stats["count_by_block_td"]])
    return out


# ------------------------------------------------------------------------------------------- optimizer

def learning_rate_schedule(peak: float, warmup_steps: int, total_steps: int, kind: str = "cosine",
                           final_fraction: float = 0.1) -> optax.Schedule:
    """Linear warmup to `peak`, then cosine / linear decay to `final_fraction * peak` at `total_steps`, or constant."""
    rest = max(total_steps - warmup_steps, 1)
    if kind == "cosine":
        after = optax.cosine_decay_schedule(peak, rest, alpha=final_fraction)
    elif kind == "linear":
        after = optax.linear_schedule(peak, peak * final_fraction, rest)
    else:
        after = optax.constant_schedule(peak)
    if warmup_steps <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup_steps), after], [warmup_steps])


def make_optimizer(schedule: optax.Schedule, *, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.95,
                   eps: float = 1e-8, clip_norm: float = 1.0,
                   frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
    """AdamW (decay on weight matrices only) after global-norm clipping.

    `frozen` top-level params get no weight decay; `train_step` gives them zero gradients, so they never move.
    """
    def decay_mask(params):
        # Scanned layers add a leading [L] axis: a matrix there has ndim 3, a norm scale or bias 2.
        def is_matrix(path, p):
            if getattr(path[0], "key", None) in frozen:
                return False
            scanned = any(getattr(entry, "key", None) == "layers" for entry in path)
            return p.ndim >= (3 if scanned else 2)
        return jax.tree_util.tree_map_with_path(is_matrix, params)

    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm > 0 else []
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask))
    return optax.chain(*parts)


def stop_frozen(params, frozen: tuple[str, ...], embed_rows: tuple[int, ...] = ()):
    """`params` with no gradient through the `frozen` top-level entries (the compiler then skips their grads),
    except through the rows `embed_rows` of a frozen `embed` (e.g. the mask token's: the draft learns it)."""
    def stop(name, p):
        if name not in frozen:
            return p
        if name == "embed" and embed_rows:
            live = jnp.zeros((p.shape[0], 1), bool).at[jnp.asarray(embed_rows)].set(True)
            return jnp.where(live, p, jax.lax.stop_gradient(p))
        return jax.lax.stop_gradient(p)
    return {name: stop(name, p) for name, p in params.items()}


def opt_state_shardings(optimizer: optax.GradientTransformation, abstract_params, param_shardings, mesh: Mesh):
    """Optimizer-state shardings: moments shard like their parameters, counters are replicated."""
    abstract_state = jax.eval_shape(optimizer.init, abstract_params)
    return optax.tree_map_params(optimizer, lambda _, s: s, abstract_state, param_shardings,
                                 transform_non_params=lambda _: sharding.replicated(mesh),
                                 is_leaf=lambda x: isinstance(x, NamedSharding))


# ------------------------------------------------------------------------------------------------ step

def batch_sharding(mesh: Mesh, rules=sharding.LOGICAL_AXIS_RULES) -> NamedSharding:
    """[A, B, T] micro-batched rows: B over the batch mesh axes."""
    return NamedSharding(mesh, P(None, *sharding.logical_to_mesh(("batch", "length"), rules)))


def grads_and_stats(params, cfg: ModelConfig, batch, k: int, *, dtype, remat: bool,
                    frozen: tuple[str, ...] = (), embed_rows: tuple[int, ...] = (), target_params=None,
                    objective: pard2.Objective | None = None):
    """Gradient of the summed loss and the stats, accumulated over the leading micro-batch axis [A, B, T]."""
    def loss(p, batch):
        return loss_sums(stop_frozen(p, frozen, embed_rows), cfg, batch, k, dtype=dtype, remat=remat,
                         target_params=target_params, objective=objective)
    grad_fn = jax.value_and_grad(loss, has_aux=True)

    def micro(carry, mb):
        g_acc, loss_acc, s_acc = carry
        (loss, stats), g = grad_fn(params, batch=mb)
        return (jax.tree.map(jnp.add, g_acc, g), loss_acc + loss, jax.tree.map(jnp.add, s_acc, stats)), None

    shapes = jax.eval_shape(lambda p, mb: loss(p, mb)[1], params, jax.tree.map(lambda x: x[0], batch))
    zeros_stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    init = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32), zeros_stats)
    (grads, loss_sum, stats), _ = jax.lax.scan(micro, init, batch)
    return grads, loss_sum, stats


def train_step(params, opt_state, batch, target_params=None, *, cfg: ModelConfig,
               optimizer: optax.GradientTransformation, k: int, dtype=jnp.float32, remat: bool = False,
               frozen: tuple[str, ...] = (), embed_rows: tuple[int, ...] = (),
               objective: pard2.Objective | None = None):
    """One optimizer step on a [A, B, T] batch: the (weighted) mean loss over all its labelled tokens.
    PARD-2 (`objective`) reads the frozen target's `target_params`.

    Returns new params, new optimizer state and metrics (loss, accuracy_by_block, grad_norm, counts).
    """
    grads, loss_sum, stats = grads_and_stats(params, cfg, batch, k, dtype=dtype, remat=remat, frozen=frozen,
                                             embed_rows=embed_rows, target_params=target_params,
                                             objective=objective)
    grads = jax.tree.map(lambda g: g / jnp.maximum(stats["weight"], 1e-6), grads)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    if objective is not None:
        updates = dict(updates, target_proj=_proj_updates(updates["target_proj"], objective, stats))
    params = optax.apply_updates(params, updates)
    metrics = metrics_from_sums(loss_sum, stats)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return params, opt_state, metrics


def _proj_updates(proj: dict, objective: pard2.Objective, stats) -> dict:
    """target_proj's updates at its own learning rate (`proj_lr_multiplier`) and, with `precondition`, each input
    feature's row (the STACKED layout: kernel [features, embed]) scaled by `pard2.proj_update_scale`."""
    proj = jax.tree.map(lambda u: u * objective.proj_lr_multiplier, proj)
    if objective.precondition:
        scale = pard2.proj_update_scale(stats["feature_sq"], stats["featured"])
        proj = dict(proj, kernel=proj["kernel"] * scale[:, None])
    return proj


@dataclasses.dataclass(frozen=True)
class ShardedStep:
    """The jitted step and its mesh: calling or tracing it enters the mesh and the logical-axis rules."""

    jitted: Any
    mesh: Mesh
    rules: Any

    def __call__(self, params, opt_state, batch, target_params=None):
        with sharding.use_mesh(self.mesh, self.rules):
            return self.jitted(params, opt_state, batch, target_params)

    def trace(self, params, opt_state, batch, target_params=None):
        """The traced step (`.jaxpr`, `.lower()`) for arguments that may be ShapeDtypeStructs (a dry run)."""
        with sharding.use_mesh(self.mesh, self.rules):
            return self.jitted.trace(params, opt_state, batch, target_params)


def jit_train_step(cfg: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh, param_shardings,
                   opt_shardings, *, k: int, dtype=jnp.float32, remat: bool = False,
                   frozen: tuple[str, ...] = (), embed_rows: tuple[int, ...] = (),
                   rules=sharding.LOGICAL_AXIS_RULES, objective: pard2.Objective | None = None,
                   target_shardings=None) -> ShardedStep:
    """`step(params, opt_state, batch[, target_params]) -> (params, opt_state, metrics)`, jitted with shardings;
    params and optimizer state are donated. Call it with the global arrays; it enters the mesh and rules
    itself. PARD-2 (`objective`) takes the frozen target's params, placed by `target_shardings`."""
    step = jax.jit(
        functools.partial(train_step, cfg=cfg, optimizer=optimizer, k=k, dtype=dtype, remat=remat,
                          frozen=frozen, embed_rows=embed_rows, objective=objective),
        in_shardings=(param_shardings, opt_shardings, batch_sharding(mesh, rules), target_shardings),
        out_shardings=(param_shardings, opt_shardings, sharding.replicated(mesh)),
        donate_argnums=(0, 1),
    )
    return ShardedStep(step, mesh, rules)


def host_metrics(metrics) -> dict[str, Any]:
    """Device metrics -> plain Python numbers and lists."""
    out = {}
    for name, v in jax.device_get(metrics).items():
        v = np.asarray(v)
        out[name] = v.tolist() if v.ndim else float(v)
    return out
