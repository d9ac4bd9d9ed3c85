"""Configs for the published PARD pairs and the dry runs: the shape table, the reference recipe in the training
configs, the inference configs, and `--dry-run` of every shipped training and inference config on 8 simulated CPU
devices with the models cut to one layer (no weights, data, tokenizer or hub read)."""

import glob
import os
import re

import pytest

from pard_jax.cli import generate, train
from pard_jax.config_io import load_config
from pard_jax.errors import UserError
from pard_jax.models import shapes
from pard_jax.speculative import assemble, infer_dry_run
from pard_jax.speculative.config import InferConfig, validate
from pard_jax.training.cod import token_budget
from pard_jax.training.config import load_train_config
from pard_jax.weights.sources import model_shape
from processes import REPO, run_program

TRAIN = {name: os.path.join(REPO, "configs", "train", f"{name}.yaml")
         for name in ("pard_llama3.2_1b", "pard_qwen2.5_0.5b", "pard_qwen3_0.6b")}
INFER = sorted(glob.glob(os.path.join(REPO, "configs", "infer", "*.yaml")))


def test_shape_table_matches_the_published_parameter_counts():
    import jax

    from pard_jax.models.decoder import init_params

    published = {"meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248, "meta-llama/Llama-3.3-70B-Instruct": 70_553_706_496,
                 "meta-llama/Llama-3.2-1B-Instruct": 1_235_814_400, "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
                 "Qwen/Qwen2.5-0.5B-Instruct": 494_032_768, "Qwen/Qwen3-8B": 8_190_735_360,
                 "Qwen/Qwen3-0.6B": 596_049_920, "HuggingFaceTB/SmolLM2-135M-Instruct": 134_515_008}
    for model_id, count in published.items():
        cfg = shapes.model_config(model_id)
        abstract = jax.eval_shape(lambda cfg=cfg: init_params(cfg, jax.random.key(0)))
        assert sum(x.size for x in jax.tree.leaves(abstract)) == count, model_id
    llama, qwen2, qwen3 = (shapes.model_config(m) for m in ("llama-3.2-1b", "QWEN2.5-0.5B-INSTRUCT", "qwen3-0.6b"))
    assert llama.rope_scaling.factor == 32 and llama.tie_word_embeddings and not llama.qkv_bias
    assert shapes.model_config("meta-llama/Llama-3.1-8B-Instruct").rope_scaling.factor == 8
    assert qwen2.qkv_bias and not qwen2.qk_norm and qwen3.qk_norm and not qwen3.qkv_bias
    # A published draft has the shapes of the model it was adapted from.
    for draft, base in (("amd/PARD-Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct"),
                        ("amd/PARD-Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct"), ("amd/PARD-Qwen3-0.6B", "Qwen/Qwen3-0.6B")):
        assert shapes.model_config(draft) == shapes.model_config(base)
    assert shapes.hf_config("acme/unknown") is None


def test_model_shape_reads_no_weights_and_names_the_table_when_it_cannot():
    draft = model_shape("smollm2-135m-pard")  # the shipped draft's config.json, weights untouched
    assert draft.num_layers == 4 and draft.pard_token == 16 and draft.draft_vocab is not None
    assert model_shape("Qwen/Qwen3-8B", num_layers=2).num_layers == 2
    with pytest.raises(UserError) as e:
        model_shape("acme/unknown-7b")
    message = str(e.value)
    assert "acme/unknown-7b" in message and "meta-llama/Llama-3.2-1B-Instruct" in message and message.count(". ") == 0


@pytest.mark.parametrize("name, mask, lr", [("pard_llama3.2_1b", 128020, 1e-5), ("pard_qwen2.5_0.5b", 151665, 3e-5),
                                            ("pard_qwen3_0.6b", 151670, 3e-5)])
def test_training_configs_hold_the_reference_recipe(name, mask, lr):
    cfg = load_train_config(TRAIN[name])
    p, d, o, t = cfg.pard, cfg.data, cfg.optimizer, cfg.train
    assert (p.k, p.r, p.r_min, p.mask_token_id) == (8, 0.7, 0.2, mask)
    assert (d.max_length, t.batch_size, t.compute_dtype, t.remat) == (512, 64, "bfloat16", True)
    assert (o.learning_rate, o.schedule, o.warmup_steps, o.b2, o.weight_decay) == (lr, "constant", 0, 0.999, 0.0)
    assert d.train_on_prompt and all(path.startswith("PLACEHOLDER/") for path in d.paths)
    assert token_budget(512, 8, 0.7, 0.2) <= d.row_length  # one full sequence per row
    assert mask < model_shape(cfg.model.spec).vocab_size


@pytest.mark.parametrize("name, target, mask, lr, dropout, length", [
    ("pard2_llama3.1_8b", "meta-llama/Llama-3.1-8B-Instruct", 128020, 1e-5, 0.2, 512),
    ("pard2_qwen3_8b", "Qwen/Qwen3-8B", 151670, 3e-5, 0.1, 1024)])
def test_pard2_training_configs_hold_the_official_recipe(name, target, mask, lr, dropout, length):
    cfg = load_train_config(os.path.join(REPO, "configs", "train", f"{name}.yaml"))
    p, p2, d = cfg.pard, cfg.pard2, cfg.data
    assert (p.k, p.r, p.r_min, p.mask_token_id) == (16, 0.7, 0.1, mask)
    assert (p2.target, p2.target_layers, p2.scale, p2.ce_alpha, p2.kd_alpha, p2.kd_temperature, p2.feature_dropout,
            p2.cat) == (target, [-1, -8, -16, -24], 0.02, 0.1, 1.0, 1.0, dropout, True)
    assert (cfg.optimizer.learning_rate, d.max_length, d.train_on_prompt, cfg.train.batch_size) == (lr, length, False, 64)
    assert token_budget(length, 16, 0.7, 0.1) <= d.row_length and length <= p2.base_length
    draft, tgt = model_shape(f"amd/PARD2-{target.split('/')[1].replace('-Instruct', '')}"), model_shape(target)
    assert draft.pard2.target_dim == 4 * tgt.hidden_size and draft.pard_token == mask


@pytest.mark.parametrize("path", INFER)
def test_inference_configs_are_the_published_pairs(path):
    cfg = load_config(InferConfig, path)
    validate(cfg)
    target, draft = model_shape(cfg.target), model_shape(cfg.draft)
    if os.path.basename(path).startswith("pard2_"):  # PARD-2's official evaluation: k=15, 256 new tokens
        assert (cfg.mode, cfg.k, cfg.dtype, cfg.max_new_tokens, cfg.pard2) == ("pard", 15, "bfloat16", 256, "auto")
        assert draft.pard2.target_dim == len(draft.pard2.target_layers) * target.hidden_size
        assert assemble.target_dependent(cfg, target, draft)
    else:
        assert (cfg.mode, cfg.k, cfg.dtype, cfg.max_new_tokens) == ("pard", 12, "bfloat16", 512)
    assert (cfg.mesh.data, cfg.mesh.tensor) == (1, 1)
    assert draft.vocab_size <= target.vocab_size and draft.architecture == target.architecture


def test_inference_mesh_needs_its_devices():
    with pytest.raises(UserError, match="needs 2 devices but this run has 1"):
        infer_dry_run.dry_run(load_config(InferConfig, INFER[0], ["mesh.tensor=2"]), prompt_len=64, layers=1)


def test_inference_dry_run_refuses_a_prompt_past_the_context_naming_its_flag():
    c = load_config(InferConfig, INFER[0])
    context = c.max_cache_len or model_shape(c.target).max_position_embeddings
    with pytest.raises(UserError, match=f"the context is {context}; shorten --prompt-len"):
        infer_dry_run.dry_run(c, prompt_len=context, layers=1)


@pytest.mark.parametrize("main, argv", [
    (train.main, ["--config", TRAIN["pard_llama3.2_1b"], "--dry-run", "model.spec=acme/unknown-7b"]),
    (generate.main, ["--config", INFER[0], "--dry-run", "--target", "acme/unknown-7b"]),
])
def test_dry_run_of_an_unknown_model_is_one_sentence(capsys, main, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "acme/unknown-7b" in err[0]
    assert "Qwen/Qwen3-8B" in err[0]




def test_dry_run_of_every_shipped_config_on_8_devices():
    res = run_program("dry_runs", devices=8, timeout=600)
    assert set(res["train"]) == {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "configs/train/*.yaml"))}
    for name, r in res["train"].items():
        assert r["rc"] == 0, (name, r["err"])
        for line in ("compiled for 8 cpu device(s)", "parameters", "optimizer state", "temporaries", "peak", "FLOPs"):
            assert line in r["out"], (name, line, r["out"])
    assert "fsdp=8" in res["train"]["pard_llama3.2_1b.yaml"]["out"]
    out = res["train"]["pard_llama3.2_1b.yaml"]["out"]
    fits = {ln[2:12].strip(): ln for ln in out.splitlines() if ln.startswith(("  TPU", "  A100", "  H100", "  H200"))}
    per_device = {name: int(re.search(r"\((\d+) per device\)", ln).group(1)) for name, ln in fits.items()}
    assert len(per_device) == 7, out
    # The step compiled at 8 rows per device peaks under 72 GiB, so an H100 holds at least those; a v5e holds fewer.
    assert per_device["H100 80GB"] >= 8 and per_device["TPU v5e"] < per_device["H100 80GB"] <= per_device["H200"]
    assert "tensor=2" in res["train"]["smollm2_pard_draft.yaml"]["out"]
    assert set(res["infer"]) == {*map(os.path.basename, INFER), "default"}
    for name, r in res["infer"].items():
        assert r["rc"] == 0, (name, r["err"])
        where = "compiled for 8 cpu devices (mesh data=2 tensor=4 draft_tensor=1)" \
            if name == "pard_llama3.1_8b.yaml" else "compiled for one cpu device"
        for line in (where, "KV caches", "temporaries", "peak", "FLOPs"):
            assert line in r["out"], (name, line, r["out"])
    # On data 2 x tensor 4 each device holds a quarter of the target (heads, MLP and vocabulary split), the
    # whole draft (mesh.draft_tensor=1), one of the 2 rows the batch is padded to, and a quarter of its KV heads.
    mesh = res["mesh"]
    (target_one, draft_one), (target_split, draft_split) = mesh["params"]
    assert target_one / 4 <= target_split <= 1.01 * target_one / 4 and draft_split == draft_one
    assert mesh["batch"] == 2 and mesh["cache"][1] == [mesh["cache"][0][0] // 4, mesh["cache"][0][1]]
    assert "  H100 80GB" in res["infer"]["default"]["out"]

    split = res["split"]  # what the report calls parameters, optimizer state and batch is what the step takes in
    assert abs(split["arguments"] - split["parts"]) <= 0.01 * split["parts"], split
    assert split["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert 4 * split["num_params"] / 8 <= split["params"] < 1.1 * 4 * split["num_params"] / 8  # sharded 8 ways
    # The KV caches as allocated: 2 (k, v) x 1 layer x 2 rows x kv heads x capacity x head_dim x 2 bytes (bfloat16).
    qwen3 = shapes.model_config("Qwen/Qwen3-8B"), shapes.model_config("Qwen/Qwen3-0.6B")
    per_layer = [2 * 2 * m.num_kv_heads * res["cache"]["capacity"] * m.head_dim * 2 for m in qwen3]
    assert res["cache"]["got"] == per_layer, res["cache"]
