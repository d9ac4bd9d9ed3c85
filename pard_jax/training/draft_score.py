"""Teacher-forced draft scoring: how often a greedy target would accept a PARD draft's proposals along fixed
sequences (the target's own greedy continuations), from one forward pass per packed row instead of generation.

Keeping every block at every position (COD with r = 1, `training.cod`) under the PARD attention mask gives each
token exactly the context the draft sees at inference. For an anchor a (the newest committed token: `last` in
`speculative.loop`), the draft's proposal j (0-based) is the output of block j's token at position a + j, which
predicts x_{a+j+1}; greedy verification accepts the leading run of hits. A label the draft cannot propose (outside
a sub-vocabulary head) is a miss.

The figures are deterministic, so they compare drafts (checkpoints, recipes) in minutes without timing noise;
`infer/bench.py` measures speed. Every answer anchor counts once here, while generation visits the anchors its
own acceptances lead to, so tokens per target call is an estimate of what a benchmark measures, not the same
number.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pard_jax.models import masks
from pard_jax.models.config import ModelConfig
from pard_jax.models.decoder import forward
from pard_jax.training import cod, packing, pard2
from pard_jax.training.step import QUERY_BLOCK

ROW_ROUNDING = 256  # packed rows are a multiple of this long: a few row lengths, a few compiled programs


@dataclasses.dataclass
class DraftScore:
    hits: np.ndarray  # [k]: anchors whose proposal j was right (whatever the proposals before it)
    scored: np.ndarray  # [k]: anchors with a token to predict at proposal j
    run_lengths: np.ndarray  # [anchors]: accepted proposals per anchor, greedy (0..k)

    @property
    def anchors(self) -> int:
        """Answer positions the draft was scored from."""
        return int(self.run_lengths.size)

    @property
    def accuracy(self) -> np.ndarray:
        """[k] how often proposal j alone is right."""
        return self.hits / np.maximum(self.scored, 1)

    def tokens_per_call(self, k: int) -> float:
        """Tokens per target call with k proposals: the accepted ones plus the target's own next token."""
        return 1.0 + float(np.mean(np.minimum(self.run_lengths, k))) if self.anchors else 0.0


def score_example(hit: np.ndarray, block: np.ndarray, position: np.ndarray, prompt_len: int, length: int,
                  k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence's (hits [k], scored [k], run lengths [anchors]) from its tokens' hits (block, position).

    Anchors are the answer's positions a = prompt_len - 1 .. length - 2 (each has a next token to predict).
    """
    at = np.zeros((k, length), bool)
    at[block, position] = hit
    anchors = np.arange(prompt_len - 1, length - 1)
    target = anchors[None, :] + np.arange(k)[:, None]  # [k, A]: the position proposal j is made at
    has_label = target <= length - 2
    right = has_label & at[np.arange(k)[:, None], np.minimum(target, length - 1)]
    runs = np.cumprod(right, axis=0).sum(axis=0)
    return right.sum(axis=1), has_label.sum(axis=1), runs


@functools.lru_cache(maxsize=8)
def _row_hits(cfg: ModelConfig, target_cfg: ModelConfig | None, row_length: int):
    """The jitted per-row scorer of one draft config (cached: every prompt set reuses its compiled programs); with
    `target_cfg` the PARD-2 draft reads that target's features (target-dependent)."""
    vocab = None if cfg.draft_vocab is None else jnp.asarray(cfg.draft_vocab, jnp.int32)

    @jax.jit
    def hits(params, row, target_params):
        mask = masks.pard_attention_mask(row["segments"], row["blocks"], row["anchors"], row["positions"])
        features = None
        if target_cfg is not None:
            features, _, _ = pard2.target_signals(target_params, pard2.Objective(target_cfg, row_length), row,
                                                  cfg.pard2.target_layers, dtype=jnp.float32,
                                                  query_block=QUERY_BLOCK, teacher=False)
        logits = forward(params, cfg, row["tokens"], row["positions"], new_mask=mask, query_block=QUERY_BLOCK,
                         features=features)
        choice = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        if vocab is not None:  # indices into the sub-vocabulary -> token ids
            choice = vocab[choice]
        return (choice == row["labels"]) & (row["labels"] >= 0)

    return hits


def score(params, cfg: ModelConfig, sequences: Sequence[Sequence[int]], prompt_lens: Sequence[int], *, k: int,
          mask_id: int, target_params=None, target_cfg: ModelConfig | None = None) -> DraftScore:
    """Score a draft (`params`, either layer layout) along each sequence's answer (the tokens after its prompt);
    a PARD-2 draft given its target (`target_params`, `target_cfg`) reads the target's features (TD)."""
    examples = []
    for ids, plen in zip(sequences, prompt_lens):
        ids = np.asarray(ids, np.int32)
        kept = cod.sample_kept(ids.shape[0], k, 1.0, 1.0, np.random.default_rng(0))  # r = 1: every position
        examples.append(cod.kept_tokens(ids, np.arange(ids.shape[0]) >= plen, kept, mask_id))
    sizes = [ex["tokens"].shape[0] for ex in examples]
    row_length = -(-max(sizes) // ROW_ROUNDING) * ROW_ROUNDING
    hits_fn = _row_hits(cfg, target_cfg, row_length)
    hits, scored, runs = np.zeros(k, np.int64), np.zeros(k, np.int64), []
    for group in packing.first_fit_decreasing(sizes, row_length):
        row = packing.pack_row([examples[i] for i in group], row_length)
        hit = np.asarray(hits_fn(params, {f: jnp.asarray(row[f][None]) for f in packing.ROW_FIELDS},
                                 target_params))[0]
        for segment, i in enumerate(group, start=1):
            sel = row["segments"] == segment
            h, s, r = score_example(hit[sel], row["blocks"][sel], row["positions"][sel], prompt_lens[i],
                                    len(sequences[i]), k)
            hits, scored = hits + h, scored + s
            runs.append(r)
    run_lengths = np.concatenate(runs) if runs else np.zeros(0, np.int64)
    return DraftScore(hits, scored, run_lengths)
