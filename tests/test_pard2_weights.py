"""Official-format PARD-2 drafts (config.json spd_type pard2 + warp_model.bin written by torch.save): loaded with
the official semantics, decoded target-dependently to the target's own tokens, refused in one sentence when they
cannot work, and exported back in the same layout."""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from pard_jax.cli import generate
from pard_jax.models.config import Pard2
from pard_jax.models.decoder import forward, hidden_index
from pard_jax.models.layout import unstack_layers
from pard_jax.weights.export import export_hf
from pard_jax.weights.sources import load_model
from pard_jax.weights.torch_file import read_tensors, write_tensors
from tests import hf_tiny

SHAPE, MASK_ID, LAYERS = hf_tiny.PARD2_SHAPE, hf_tiny.PARD2_MASK_ID, hf_tiny.PARD2_LAYERS


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return hf_tiny.make_pard2_pair(tmp_path_factory.mktemp("pard2"))


def test_the_draft_reads_features_as_the_official_wrapper_does(pair):
    """inputs_embeds = embed(ids) + scale * target_proj(features), then the base model (pard2_infer.py's
    TargetFeatEmbedWarp)."""
    loaded = load_model(pair["draft"])
    assert loaded.cfg.pard2.target_layers == (-1, 1) and loaded.cfg.pard2.scale == 0.5
    np.testing.assert_array_equal(loaded.params["target_proj"]["kernel"], pair["warp"]["target_proj.weight"].T)
    tokens = hf_tiny.sample_tokens(132, batch=2, length=7)
    feats = np.random.default_rng(0).standard_normal((2, 7, 96)).astype(np.float32)
    model = pair["model"]
    with torch.no_grad():
        proj = torch.as_tensor(feats) @ torch.as_tensor(pair["warp"]["target_proj.weight"]).T
        embeds = model.get_input_embeddings()(torch.as_tensor(tokens)) + 0.5 * (
            proj + torch.as_tensor(pair["warp"]["target_proj.bias"]))
        want = model(inputs_embeds=embeds).logits.numpy()
    got = forward(loaded.params, loaded.cfg, jnp.asarray(tokens), jnp.broadcast_to(jnp.arange(7), tokens.shape),
                  features=jnp.asarray(feats))
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def _run(capsys, pair, *args):
    argv = ["--target", pair["target"], "--draft", pair["draft"], "--prompt", "w5 w6 w7 w9", "--json",
            "--max-new-tokens", "16", "-k", "3", "--dtype", "float32", *args]
    rc = generate.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_an_official_pard2_draft_decodes_the_targets_tokens(capsys, pair):
    rc, out, err = _run(capsys, pair, "--mode", "ar")
    assert rc == 0, err
    ar = json.loads(out.splitlines()[-1])["token_ids"]
    for pard2 in ("auto", "td", "ti"):
        rc, out, err = _run(capsys, pair, "--mode", "pard", "--pard2", pard2)
        assert rc == 0, err
        row = json.loads(out.splitlines()[-1])
        assert row["token_ids"] == ar and row["pard2"] == ("ti" if pard2 == "ti" else "td")


def test_pard2_drafts_that_cannot_work_are_refused_in_one_sentence(capsys, pair, tmp_path):
    broken = str(tmp_path / "no_warp")
    shutil.copytree(pair["draft"], broken)
    os.remove(os.path.join(broken, "warp_model.bin"))
    rc, _, err = _run(capsys, dict(pair, draft=broken), "--mode", "pard")
    assert rc == 2 and err.count("error:") == 1 and "warp_model.bin" in err
    wide = str(tmp_path / "wide")
    shutil.copytree(pair["draft"], wide)
    cfg = json.load(open(os.path.join(wide, "config.json")))
    cfg.update(pard2_target_layers=[-1, 5], pard2_target_dim=96)
    json.dump(cfg, open(os.path.join(wide, "config.json"), "w"))
    rc, _, err = _run(capsys, dict(pair, draft=wide), "--mode", "pard", "--pard2", "auto")  # (the packaged default: ti)
    assert rc == 2 and "hidden states [5]" in err and "--pard2 ti" in err
    rc, out, err = _run(capsys, dict(pair, draft=wide), "--mode", "pard", "--pard2", "ti")
    assert rc == 0, err  # target-independently it still drafts
    rc, _, err = _run(capsys, pair, "--mode", "sd", "--pard2", "td")
    assert rc == 2 and "--pard2 td needs --mode pard" in err


def test_export_writes_the_official_layout_back(pair, tmp_path):
    loaded = load_model(pair["draft"])
    out = str(tmp_path / "out")
    export_hf(loaded.params, loaded.cfg, out)
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["spd_type"] == "pard2" and cfg["pard2_target_layers"] == LAYERS and cfg["pard2_target_dim"] == 96
    warp = torch.load(os.path.join(out, "warp_model.bin"), weights_only=True)
    assert set(warp) == {"target_proj.weight", "target_proj.bias"}
    np.testing.assert_array_equal(warp["target_proj.weight"].numpy(), pair["warp"]["target_proj.weight"])
    again = load_model(out)
    np.testing.assert_array_equal(again.params["target_proj"]["kernel"], loaded.params["target_proj"]["kernel"])


def test_torch_files_are_read_without_unpickling_code(tmp_path):
    path = str(tmp_path / "evil.bin")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo unpickled",))

    torch.save({"target_proj.weight": Evil()}, path)
    with pytest.raises(Exception, match="refusing to load it"):
        read_tensors(path)
    write_tensors(str(tmp_path / "ok.bin"), {"a": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert torch.load(str(tmp_path / "ok.bin"), weights_only=True)["a"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_hidden_features_are_transformers_hidden_states_with_the_final_norm_last(tmp_path):
    """Index i < N is transformers' hidden_states[i] (embeddings, then each layer's output); index N (= -1) is
    the final norm of the last layer's output (transformers 4.51's hidden_states[-1], which the official
    checkpoints were trained on); both layouts agree."""
    torch.set_num_threads(1)
    model = hf_tiny.make_tiny("qwen3", str(tmp_path))
    loaded = load_model(str(tmp_path))
    n = loaded.cfg.num_layers
    tokens = hf_tiny.sample_tokens(loaded.cfg.vocab_size, batch=2, length=9)
    last = []  # the last layer's own output (whether transformers records it before or after the norm varies)
    hook = model.model.layers[-1].register_forward_hook(lambda m, i, o: last.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        out = model(torch.as_tensor(tokens), output_hidden_states=True)
        want = [h.numpy() for h in out.hidden_states[:n]] + [model.model.norm(last[0]).numpy()]
    hook.remove()
    positions = jnp.broadcast_to(jnp.arange(9), tokens.shape)
    layers = tuple(range(-(n + 1), 0))
    for params in (loaded.params, unstack_layers(loaded.params)):
        _, feats = jax.jit(forward, static_argnums=1, static_argnames="feature_layers")(
            params, loaded.cfg, jnp.asarray(tokens), positions, feature_layers=layers)
        got = np.asarray(feats).reshape(2, 9, n + 1, loaded.cfg.hidden_size)
        for i in range(n + 1):
            np.testing.assert_allclose(got[:, :, i], want[i], atol=1e-4, rtol=1e-4, err_msg=f"hidden state {i}")
    assert [hidden_index(i, n) for i in (-1, -(n + 1), 0, n)] == [n, 0, 0, n]
    with pytest.raises(ValueError, match="outside"):
        hidden_index(n + 1, n)


def test_a_compact_pard2_draft_with_a_sub_vocabulary_head_round_trips(tmp_path):
    """The shipped form of a PARD-2 draft: bfloat16, no embedding table but its own mask row, a trained
    sub-vocabulary head, and target_proj in warp_model.bin; loaded beside its target's table it is the same draft."""
    import dataclasses

    import ml_dtypes

    from tests.tiny_models import tiny_config, tiny_params

    cfg = dataclasses.replace(tiny_config(vocab=64, layers=1), pard_token=5, draft_vocab=(0, 2, 5, 7, 30),
                              pard2=Pard2((-1, -2), 64, proj_bias=True))
    params = jax.tree.map(np.array, tiny_params(cfg, 0, scale=1.0))
    target_embed = np.array(params["embed"])
    params["embed"][5] += 1.0  # the learned mask row
    export_hf(params, cfg, str(tmp_path), compact=True, embed_rows=[5])
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors", "warp_model.bin"]
    got = load_model(str(tmp_path), shared_embed=target_embed)
    assert got.cfg.pard2 == cfg.pard2 and got.cfg.draft_vocab == cfg.draft_vocab
    bf16 = lambda a: np.asarray(a).astype(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    for path in (("target_proj", "kernel"), ("target_proj", "bias"), ("draft_head",)):
        want, have = params, got.params
        for key in path:
            want, have = want[key], have[key]
        np.testing.assert_array_equal(np.asarray(have), bf16(want), err_msg=str(path))
    np.testing.assert_array_equal(np.asarray(got.params["embed"][5]), bf16(params["embed"][5]))
