"""How much a PARD-2 draft could gain from the target's features, measured in minutes before a long training run.

At its newest real token t a target-dependent draft reads the target's features f_{t-1} (the hidden states at the
position before) and proposes x_{t+1}. A linear probe asks whether f_{t-1} tells x_{t+1} beyond what the
target-independent draft already knows there: with the draft frozen, its final hidden state h_t, its head W and
the features normalised per dimension (RMS 1), fit

    logits = W (h_t + A f_{t-1})

on some sequences and score the others. Fitted alone (`logits = W A f_{t-1}`) the same probe shows what the
features tell by themselves. A late, linear fusion is a lower bound on what training the draft's layers could
draw from the features, but a cheap and telling one: if it adds nothing, neither the projection nor the draft's
four layers start from a signal.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import forward
from pard_jax.training.step import head_labels


@dataclasses.dataclass
class ProbeData:
    """Per scored position t: the draft's h_t [N, D], the target's f_{t-1} [N, F] (RMS-normalised per dimension),
    the label x_{t+1} as an index of the draft's head [N] (-1: outside a sub-vocabulary head), the sequence [N]."""

    hidden: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    sequence: np.ndarray


def collect(draft_params, draft_cfg: ModelConfig, target_params, target_cfg: ModelConfig,
            sequences: Sequence[np.ndarray], scored: Sequence[np.ndarray], layers: tuple[int, ...],
            batch: int = 8) -> ProbeData:
    """ProbeData at the positions t >= 1 of each sequence whose next token is scored (`scored[i][t + 1]`)."""
    length = max(len(s) for s in sequences)
    positions = np.broadcast_to(np.arange(length, dtype=np.int32), (batch, length))
    run_target = jax.jit(lambda p, t: forward(p, target_cfg, t, positions, feature_layers=layers, head=False)[1])
    run_draft = jax.jit(lambda p, t: forward(p, draft_cfg, t, positions, head=False))  # causal, no features
    hidden, features, labels, seq = [], [], [], []
    for start in range(0, len(sequences), batch):
        group = sequences[start:start + batch]
        tokens = np.zeros((batch, length), np.int32)
        for row, s in enumerate(group):
            tokens[row, :len(s)] = s
        f = np.asarray(run_target(target_params, tokens))
        h = np.asarray(run_draft(draft_params, tokens))
        for row, s in enumerate(group):
            t = np.flatnonzero(np.asarray(scored[start + row])[2:]) + 1  # t + 1 scored, t >= 1
            hidden.append(h[row, t])
            features.append(f[row, t - 1])
            labels.append(s[t + 1])
            seq.append(np.full(len(t), start + row))
    features = np.concatenate(features)
    features = features / np.sqrt(np.mean(np.square(features), axis=0) + 1e-6)
    labels = np.asarray(head_labels(draft_cfg, jnp.asarray(np.concatenate(labels))))
    return ProbeData(np.concatenate(hidden), features, labels, np.concatenate(seq))


def accuracy(data: ProbeData, head: np.ndarray, proj: np.ndarray, rows: np.ndarray, use_draft: bool = True) -> float:
    """How often argmax W (h_t + A f_{t-1}) (without `use_draft`: W A f_{t-1}) is x_{t+1}, over `rows`."""
    x = data.features[rows] @ proj + (data.hidden[rows] if use_draft else 0.0)
    return float(np.mean(np.argmax(x @ head.T, axis=-1) == data.labels[rows]))


def fit(data: ProbeData, head: np.ndarray, train: np.ndarray, held_out: np.ndarray, *, use_draft: bool = True,
        steps: int, lr: float, batch: int = 1024, every: int = 25, seed: int = 0):
    """Fit A [F, D] from zero by Adam on the cross-entropy over `train` rows (the draft and its head frozen).
    Returns (A at the best held-out accuracy, [(step, held-out accuracy)] every `every` steps, from step 0)."""
    h, f, y = (jnp.asarray(x[train]) for x in (data.hidden, data.features, data.labels))
    w = jnp.asarray(head)
    opt = optax.adam(lr)

    def loss(proj, i):
        x = f[i] @ proj + (h[i] if use_draft else 0.0)
        logp = jax.nn.log_softmax(x @ w.T)
        ok = y[i] >= 0
        picked = jnp.take_along_axis(logp, jnp.maximum(y[i], 0)[:, None], axis=1)[:, 0]
        return -jnp.sum(jnp.where(ok, picked, 0.0)) / jnp.maximum(jnp.sum(ok), 1)

    @jax.jit
    def update(proj, state, i):
        g = jax.grad(loss)(proj, i)
        u, state = opt.update(g, state)
        return optax.apply_updates(proj, u), state

    proj = jnp.zeros((data.features.shape[1], data.hidden.shape[1]), jnp.float32)
    state, rng = opt.init(proj), np.random.default_rng(seed)
    best = np.asarray(proj)
    curve = [(0, accuracy(data, head, best, held_out, use_draft))]
    for step in range(1, steps + 1):
        proj, state = update(proj, state, jnp.asarray(rng.integers(0, len(train), batch)))
        if step % every == 0 or step == steps:
            curve.append((step, accuracy(data, head, np.asarray(proj), held_out, use_draft)))
            if curve[-1][1] > max(a for _, a in curve[:-1]):
                best = np.asarray(proj)
    return best, curve


def split(data: ProbeData, held_out_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): the last `held_out_fraction` of the sequences are held out whole."""
    first_held = int(round((data.sequence.max() + 1) * (1.0 - held_out_fraction)))
    rows = np.arange(len(data.labels))
    return rows[data.sequence < first_held], rows[data.sequence >= first_held]
