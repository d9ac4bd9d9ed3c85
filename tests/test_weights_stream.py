"""pard_jax.weights.stream: checkpoints placed straight into device shards. On 6 simulated CPU devices (data 2 x
tensor 3) the streamed params equal load_model's, each device holds and reads only its own slices; in process,
drafts assembled from more than one place, and that bad checkpoints give load_model's very sentences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import SingleDeviceSharding

from pard_jax.errors import UserError
from pard_jax.models.layout import unstack_layers
from pard_jax.weights import sources, store, stream, table
from pard_jax.weights.export import export_hf
from pard_jax.weights.sources import load_model
from tests.processes import run_program
from tests.tiny_models import tiny_config



def _tiny_hf_dirs(tmp_path):
    """One tiny llama (untied) whose heads, MLP and vocab divide by 3, as one file and as an index of shards."""
    import torch

    from tests import hf_tiny

    torch.set_num_threads(1)
    kw = dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=3, intermediate_size=96, vocab_size=132)
    single, index = tmp_path / "single", tmp_path / "index"
    hf_tiny.make_tiny("llama", str(single), **kw)
    hf_tiny.make_tiny("llama", str(index), max_shard_size="100KB", **kw)
    assert (index / "model.safetensors.index.json").is_file() and not (index / "model.safetensors").exists()
    return str(single), str(index)


def test_streams_into_shards_on_6_devices(tmp_path):
    single, index = _tiny_hf_dirs(tmp_path)
    res = run_program("weights_stream", [single, index, tmp_path], devices=6, timeout=300)
    assert res["tokenizer_source"] == single and res["spec"] == single and res["cfg_same"]
    # 1. the same values as load_model (+ unstack_layers), exactly; bfloat16 = float32 cast.
    assert res["f32"] and res["bf16"] and res["index"] and res["index_short"]
    assert res["cache"] and res["cache_short"]
    assert [None, "tensor"] in res["specs"] and ["tensor", None] in res["specs"]
    # 2. each device holds a third of every tensor-sharded leaf, and no more than its share overall.
    assert res["thirds"] and len(res["per_device"]) == 6
    assert max(res["per_device"].values()) <= 1.1 * res["sharded"] / 3 + res["replicated"]
    # 3. no read returned more than one device's slice: a third of each 2-D tensor (all sharded), or a 1-D norm.
    for reads in (res["reads"], res["cache_reads"]):
        assert reads
        for key, size, whole in reads:
            assert size * 3 == whole if not key.endswith(("norm.weight", "scale")) else size == whole, key


# ----------------------------------------------------------------------------------------------- in process


def _one_device(path, shape):
    return SingleDeviceSharding(jax.devices()[0])


def _random_params(cfg):
    """Params of `cfg` drawn on the host (no model init: fast)."""
    rng = np.random.default_rng(0)
    flat = {k: rng.standard_normal(s).astype(np.float32) for k, s in table.expected_shapes(cfg).items()}
    return traverse_util.unflatten_dict(flat, sep="/")


def _export(tmp_path, name="m", **kw):
    cfg = tiny_config(**{"tie_word_embeddings": False, "layers": 3, **kw})
    params = _random_params(cfg)
    out = tmp_path / name
    export_hf(params, cfg, str(out))
    return cfg, params, out


def test_drafts_assembled_from_more_than_one_place_stream_as_they_load(tmp_path):
    """A sub-vocabulary head (rows of the whole-vocabulary lm_head, or of the tied table) and a compact draft's
    table (its target's, here a device array, with rows of its own) stream to load_model's values."""
    _, _, sub = _export(tmp_path, "sub", draft_vocab=(1, 2, 5, 6, 9))
    _assert_same(stream.stream_model(str(sub), jnp.float32, _one_device).params, load_model(str(sub)).params)
    ids = (0, 3, 4, 7)
    for vocab, head in ((None, 1.0), (ids, 1.0), (ids, 1.5)):  # 1.5: a trained head, shipped as its N rows
        cfg = tiny_config(pard_token=3, draft_vocab=vocab)
        params = _random_params(cfg)
        if vocab:
            params["draft_head"] = params["embed"][np.asarray(ids)] * head
        target = params["embed"].copy()
        target[3] = 0  # the draft's own row differs from its target's
        for rows in ([3], []):
            out = str(tmp_path / f"{vocab is None}{head}{rows}")
            export_hf(params, cfg, out, compact=True, embed_rows=rows)
            got = stream.stream_model(out, jnp.float32, _one_device, shared_embed=jnp.asarray(target))
            _assert_same(got.params, load_model(out, shared_embed=target).params)


def _save(out, tensors):
    from safetensors.numpy import save_file

    save_file(tensors, str(out / "model.safetensors"))


@pytest.mark.parametrize("bad", ["unknown", "ruled_out", "layer", "missing", "shape", "num_layers"])
def test_bad_checkpoints_give_load_models_sentence(tmp_path, bad):
    cfg, params, out = _export(tmp_path)
    tensors = table.params_to_hf(params, cfg)
    num_layers = None
    if bad == "unknown":
        tensors["model.vision_tower.weight"] = np.zeros(3, np.float32)
    elif bad == "ruled_out":
        tensors["model.layers.0.self_attn.q_proj.bias"] = np.zeros(32, np.float32)
    elif bad == "layer":
        tensors["model.layers.3.input_layernorm.weight"] = np.ones(32, np.float32)
    elif bad == "missing":
        del tensors["model.layers.1.mlp.up_proj.weight"]
    elif bad == "shape":
        tensors["model.layers.2.self_attn.o_proj.weight"] = np.zeros((32, 24), np.float32)
    else:
        num_layers = 4
    tensors["model.rotary_emb.inv_freq"] = np.ones(4, np.float32)  # ignored by both
    _save(out, tensors)
    with pytest.raises(UserError) as want:
        load_model(str(out), num_layers=num_layers)
    with pytest.raises(UserError) as got:
        stream.stream_model(str(out), jnp.float32, _one_device, num_layers=num_layers)
    assert str(got.value) == str(want.value)


def test_tied_head_is_ignored_and_a_gguf_is_streamed_through_its_cache(tmp_path, monkeypatch):
    """A tied checkpoint's stored lm_head is skipped; a GGUF file is converted once into the cache (as load_model
    would), then streamed from it with load_model's tokenizer_source."""
    cfg, params, out = _export(tmp_path, tie_word_embeddings=True)
    tensors = table.params_to_hf(params, cfg)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    _save(out, tensors)
    got = stream.stream_model(str(out), jnp.float32, _one_device)
    assert "lm_head" not in got.params
    _assert_same(got.params, load_model(str(out)).params)

    monkeypatch.setenv("PARD_JAX_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "m.gguf"
    path.write_bytes(b"not read: convert_gguf is faked")
    converted = []

    def convert(p, num_layers=None, folder=None):  # sources.convert_gguf without a real GGUF
        converted.append(p)
        flat = traverse_util.flatten_dict(params, sep="/")
        store.write_params(folder, cfg, {k: np.asarray(v) for k, v in flat.items()})
        return cfg, flat
    monkeypatch.setattr(sources, "convert_gguf", convert)
    cold = stream.stream_model(str(path), jnp.bfloat16, _one_device, num_layers=2)
    warm = stream.stream_model(str(path), jnp.bfloat16, _one_device)
    assert converted == [str(path)]
    assert cold.cfg.num_layers == 2 and warm.cfg == cfg and warm.tokenizer_source == str(path)
    _assert_same(warm.params, load_model(str(path), jnp.bfloat16).params)
    assert "layers_1" in cold.params and "layers_2" not in cold.params


def _assert_same(streamed, loaded):
    want = traverse_util.flatten_dict(unstack_layers(loaded), sep="/")
    got = traverse_util.flatten_dict(streamed, sep="/")
    assert got.keys() == want.keys()
    for k in got:
        assert got[k].dtype == want[k].dtype and np.array_equal(np.asarray(got[k]), np.asarray(want[k])), k
