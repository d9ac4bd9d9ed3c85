"""Generation on a device mesh (speculative.placement): `infer/generate.py mesh.data=2 mesh.tensor=3` on 6
simulated CPU devices decodes the same tokens as one device for ar, sd and pard, batched, greedy and sampling;
the target's weights are really split (bytes per device); two processes joined with jax.distributed decode
together; and degrees that do not divide the model are refused in one sentence."""

from __future__ import annotations

import json
import os

import numpy as np

import pytest

from hf_tiny import make_tiny, make_tiny_tokenizer
from processes import run_joined, run_program
from pard_jax.errors import UserError
from pard_jax.weights.torch_file import write_tensors
from pard_jax.models.config import ModelConfig
from pard_jax.speculative import placement

# 6 heads, 3 KV heads, MLP 96 and a vocabulary of 132 all divide by 3 (and the heads by 2 and 6 too).
SHAPE = dict(hidden_size=48, intermediate_size=96, num_attention_heads=6, num_key_value_heads=3, vocab_size=132)
MASK_ID = 130  # past the tokenizer's 120 words: never text
PROMPTS = ["w5 w6 w7", "w9 " * 11, "w40 w41", "w3 w8 w13 w21 w34 w55"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesh_models")
    target, draft = str(root / "target"), str(root / "draft")
    make_tiny("llama", target, seed=1, num_hidden_layers=2, **SHAPE)
    make_tiny_tokenizer(120).save_pretrained(target)
    make_tiny("llama", draft, seed=2, num_hidden_layers=1, **SHAPE)
    pard2 = str(root / "pard2")  # an official-format PARD-2 draft: reads the target's hidden states -1 and 1
    make_tiny("llama", pard2, seed=3, num_hidden_layers=1, **SHAPE)
    cfg = json.loads((root / "pard2" / "config.json").read_text())
    cfg.update(spd_type="pard2", pard2_target_layers=[-1, 1], pard2_target_dim=96, pard2_scale=1.0)
    (root / "pard2" / "config.json").write_text(json.dumps(cfg))
    proj = np.random.default_rng(4).standard_normal((48, 96)).astype(np.float32) / 8
    write_tensors(os.path.join(pard2, "warp_model.bin"), {"target_proj.weight": proj})
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"data": p}) + "\n" for p in PROMPTS))
    return dict(target=target, draft=draft, pard2=pard2, prompts=str(prompts))


def common_args(models) -> list[str]:
    return ["--target", models["target"], "--draft", models["draft"], "--mask-token-id", str(MASK_ID),
            "--prompts-file", models["prompts"], "--max-new-tokens", "12", "--batch-size", "4", "--json",
            "--dtype", "float32", "-k", "3"]




def test_mesh_2x3_decodes_what_one_device_decodes(models):
    res = run_program("generate_mesh", [*common_args(models), "--pard2-draft", models["pard2"]], devices=6,
                      timeout=300)
    runs = res["runs"]
    one = runs["ar one"]
    assert len(one) == len(PROMPTS) and all(len(t) == 12 for t in one)
    assert len({tuple(t) for t in one}) == len(PROMPTS)  # the prompts really decode differently
    for name, toks in runs.items():
        if "sampling" not in name:
            assert toks == one, name  # greedy: every mode and mesh gives ar's tokens
    # Sampling: the keys are replicated and the draws do not depend on the placement.
    assert runs["pard sampling 2x3"] == runs["pard sampling one"]
    assert runs["pard sampling one"] != one
    # The target's head / MLP / vocabulary weights are split three ways: each device holds a third of them.
    per_device = list(res["per_device"].values())
    assert len(per_device) == 6 and res["sharded_total"] > 0.9 * (res["sharded_total"] + res["replicated_total"])
    assert max(per_device) <= 1.1 * res["sharded_total"] / 3
    assert "its 3 KV heads do not divide by 2; use mesh.tensor in [1, 3]" in res["refused"]




def test_two_processes_decode_together(models, capsys):
    """Two processes of 3 devices each form one 2x3 mesh; process 0 alone writes the output, which equals a
    one-device run's."""
    from pard_jax.cli import generate

    assert generate.main([*common_args(models), "--mode", "pard"]) == 0
    want = [json.loads(line)["token_ids"] for line in capsys.readouterr().out.splitlines()]
    outs = run_joined("infer/generate.py", [*common_args(models), "--mode", "pard", "mesh.data=2", "mesh.tensor=3"],
                      devices=3)
    rows = [[json.loads(line)["token_ids"] for line in out.splitlines() if line.startswith("{")] for out in outs]
    assert rows[0] == want  # (the collectives library may print a line of its own)
    assert rows[1] == []


def test_degrees_that_do_not_divide_are_refused():
    smol = ModelConfig("LlamaForCausalLM", 49152, 576, 1536, 30, 9, 3, 64)
    placement.check_split(smol, 3, "target", "mesh.tensor")
    with pytest.raises(UserError, match=r"its 9 attention heads and 3 KV heads do not divide by 2; "
                                        r"use mesh.tensor in \[1, 3\]"):
        placement.check_split(smol, 2, "target", "mesh.tensor")
    with pytest.raises(UserError, match="needs 8 devices but this run has 1"):
        placement.check_mesh(placement.InferMesh(data=2, tensor=4), 1)
    with pytest.raises(UserError, match=r"mesh.draft_tensor=2 must divide mesh.tensor=3; use one of \[1, 3\]"):
        placement.check_mesh(placement.InferMesh(data=1, tensor=3, draft_tensor=2), 3)
    with pytest.raises(UserError, match="a multi-host run uses every device"):
        placement.check_mesh(placement.InferMesh(data=1, tensor=2), 4, multi_process=True)
