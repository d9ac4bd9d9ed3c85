"""Tiny random Flax models for decoding-loop tests (no transformers needed).

Initial weights are scaled up so that a random model's next-token distribution is far from uniform and
varies with the context: greedy outputs then differ between models and prompts.
"""

from __future__ import annotations

import jax

from pard_jax.models import decoder
from pard_jax.models.config import ModelConfig

# Compiled: run op by op, Flax takes seconds per call even on tiny shapes.
init_params = jax.jit(decoder.init_params, static_argnums=0)
forward = jax.jit(decoder.forward, static_argnums=1)


def tiny_config(vocab=64, layers=2, **kw) -> ModelConfig:
    base = dict(architecture="LlamaForCausalLM", vocab_size=vocab, hidden_size=32, intermediate_size=64,
                num_layers=layers, num_heads=4, num_kv_heads=2, head_dim=8, tie_word_embeddings=True)
    base.update(kw)
    return ModelConfig(**base)


def tiny_params(cfg: ModelConfig, seed: int, scale: float = 30.0) -> dict:
    params = init_params(cfg, jax.random.key(seed))
    return jax.tree.map(lambda a: a * scale if a.ndim > 1 else a, params)
