"""Logits parity with transformers (torch float32) on tiny random models loaded through pard_jax.weights."""

import dataclasses

import numpy as np
import pytest
import torch

from pard_jax.weights.sources import load_model
from tests import hf_tiny

torch.set_num_threads(1)  # the test machine's cores are shared; one thread avoids oversubscription stalls

ATOL = 1e-4


@pytest.mark.parametrize("kind", sorted(hf_tiny.KINDS))
def test_logits_match_transformers(kind, tmp_path):
    model = hf_tiny.make_tiny(kind, str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert loaded.cfg.architecture == type(model).__name__
    assert loaded.cfg.tie_word_embeddings == model.config.tie_word_embeddings
    assert ("lm_head" in loaded.params) == (not model.config.tie_word_embeddings)
    assert loaded.tokenizer_source == str(tmp_path)
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size, batch=2, length=12)
    want = hf_tiny.torch_logits(model, tokens)
    got = hf_tiny.jax_logits(loaded.params, loaded.cfg, tokens)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_llama3_rope_scaling_is_applied(tmp_path):
    """The rope-scaling case would pass vacuously if the scaling did not change the logits."""
    model = hf_tiny.make_tiny("llama3-rope", str(tmp_path))
    loaded = load_model(str(tmp_path))
    assert loaded.cfg.rope_scaling is not None and loaded.cfg.rope_scaling.original_max_position_embeddings == 32
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size, batch=1, length=40)
    want = hf_tiny.torch_logits(model, tokens)
    np.testing.assert_allclose(hf_tiny.jax_logits(loaded.params, loaded.cfg, tokens), want, atol=ATOL, rtol=0)
    unscaled = dataclasses.replace(loaded.cfg, rope_scaling=None)
    assert np.abs(hf_tiny.jax_logits(loaded.params, unscaled, tokens) - want).max() > 1e-3


def test_sharded_safetensors_directory(tmp_path):
    model = hf_tiny.make_tiny("llama", str(tmp_path), max_shard_size="40KB")
    shards = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    loaded = load_model(str(tmp_path))
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size)
    np.testing.assert_allclose(hf_tiny.jax_logits(loaded.params, loaded.cfg, tokens),
                               hf_tiny.torch_logits(model, tokens), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["llama", "qwen3"])
def test_num_layers_truncation_matches_hf_with_those_layers(kind, tmp_path):
    model = hf_tiny.make_tiny(kind, str(tmp_path))
    loaded = load_model(str(tmp_path), num_layers=2)
    assert loaded.cfg.num_layers == 2
    assert loaded.params["layers"]["attn"]["q_proj"]["kernel"].shape[0] == 2
    # The same weights in an HF model built with only 2 layers (embed, final norm and head unchanged).
    short = hf_tiny.make_model(hf_tiny.hf_config(kind, num_hidden_layers=2), seed=1)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("model.layers.2.")}
    short.load_state_dict(state, strict=True)
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size)
    np.testing.assert_allclose(hf_tiny.jax_logits(loaded.params, loaded.cfg, tokens),
                               hf_tiny.torch_logits(short, tokens), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind,arch", [("llama", "llama"), ("llama-tied", "llama"), ("qwen2", "qwen2"),
                                       ("qwen3", "qwen3")])
def test_tiny_gguf_matches_its_hf_source(kind, arch, tmp_path, monkeypatch):
    """A float32 GGUF written like llama.cpp's converter (q/k rows permuted for llama) loads to the same logits."""
    monkeypatch.setenv("PARD_JAX_CACHE", str(tmp_path / "cache"))
    model = hf_tiny.make_model(hf_tiny.hf_config(kind))
    path = str(tmp_path / f"tiny-{kind}.gguf")
    hf_tiny.write_tiny_gguf(model, path, arch)
    loaded = load_model(path)
    assert loaded.cfg.architecture == type(model).__name__
    assert loaded.cfg.tie_word_embeddings == model.config.tie_word_embeddings
    assert loaded.cfg.head_dim == (getattr(model.config, "head_dim", None) or 16)
    assert loaded.cfg.eos_token_ids == (2,) and loaded.cfg.bos_token_id == 1
    assert loaded.tokenizer_source == path
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size)
    np.testing.assert_allclose(hf_tiny.jax_logits(loaded.params, loaded.cfg, tokens),
                               hf_tiny.torch_logits(model, tokens), atol=ATOL, rtol=0)
