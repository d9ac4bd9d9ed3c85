"""Programs compiled for TPU topologies on this CPU machine by the TPU compiler (libtpu, the `tpu` extra): a
tiny PARD generation loop and a COD training step for a v5e-4 and a v5p-8 with data and tensor axes used, a
batch too big for a chip reported as not fitting, and memory figures that are the TPU compiler's."""

import json

import pytest

from pard_jax import chip_fit, topology
from pard_jax.config_io import load_config
from pard_jax.errors import UserError
from pard_jax.speculative import infer_dry_run
from pard_jax.speculative.config import InferConfig
from pard_jax.training import train_dry_run
from pard_jax.training.config import load_train_config
from tests.processes import REPO

SMOKE = f"{REPO}/configs/train/smoke.yaml"
TINY = {"architectures": ["LlamaForCausalLM"], "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
        "max_position_embeddings": 1024, "bos_token_id": 1, "eos_token_id": 2}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A tiny target (2 layers) and PARD draft (1 layer) as local config.json directories."""
    root = tmp_path_factory.mktemp("tiny_pair")
    for name, extra in (("target", {}), ("draft", {"num_hidden_layers": 1, "pard_token": 5})):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps({**TINY, **extra}))
    return str(root / "target"), str(root / "draft")


def infer_config(pair, *overrides):
    target, draft = pair
    return load_config(InferConfig, None, [f"target={target}", f"draft={draft}", "mode=pard", "k=4",
                                           "batch_size=4", "max_new_tokens=32", "dtype=bfloat16", "mesh.data=2",
                                           "mesh.tensor=2", "mesh.draft_tensor=2", *overrides])


@pytest.mark.parametrize("name, kind", [("v5e-4", "TPU v5 lite"), ("v5p-8", "TPU v5")])
def test_generation_loop_and_train_step_compile_for_tpu_topologies(pair, name, kind):
    r = infer_dry_run.dry_run(infer_config(pair), prompt_len=64, fit=False, topology=name)
    assert r.platform == "tpu" and r.target.devices[0].device_kind == kind and len(r.target.devices) == 4
    assert r.verdict.fits and r.programs.peak > 0
    text = infer_dry_run.report(r)
    assert f"a TPU {name}: 4 {kind} chip(s)" in text and "data=2 tensor=2" in text and "verdict     fits" in text

    t = train_dry_run.dry_run(load_train_config(SMOKE, ["mesh.data=2", "mesh.tensor=2"]), fit=False, topology=name)
    assert t.platform == "tpu" and t.mesh == {"data": 2, "fsdp": 1, "tensor": 2} and t.verdict.fits
    assert "the TPU compiler's memory analysis" in train_dry_run.report(t)


def test_a_batch_too_big_for_a_chip_does_not_fit_by_the_compilers_word(pair, capsys):
    from pard_jax.cli import generate

    target, draft = pair
    rc = generate.main(["--dry-run", "--topology", "v5e-4", "--no-fit", "--prompt-len", "512", "--target", target,
                        "--draft", draft, "--mode", "pard", "-k", "4", "batch_size=65536", "mesh.data=4"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "does not fit: the TPU compiler says:" in out and "HBM" in out.split("does not fit")[1]


def test_the_memory_printed_is_the_tpu_compilers(pair):
    """The same loop, the same mesh shape: the TPU compiler's figures are not the CPU compiler's."""
    c = infer_config(pair, "mesh.data=1", "mesh.tensor=1", "mesh.draft_tensor=1")
    tpu = infer_dry_run.dry_run(c, prompt_len=64, fit=False, topology="v5e-4")
    cpu = infer_dry_run.dry_run(c, prompt_len=64, fit=False)
    assert cpu.platform == "cpu" and tpu.param_bytes == cpu.param_bytes
    assert (tpu.programs.start, tpu.programs.run) != (cpu.programs.start, cpu.programs.run)


def test_topology_names_and_meshes_that_do_not_fit_are_one_sentence(pair):
    assert [topology.Topology.parse(n).grid() for n in ("v5e-8", "v5e-16", "v5p-8", "v4-16")] == \
        [(2, 4), (4, 4), (2, 2, 1), (2, 2, 2)]
    for bad in ("v3-8", "v5e-12"):
        with pytest.raises(UserError, match="--topology"):
            topology.Topology.parse(bad)
    with pytest.raises(UserError, match="needs 8 chips but a v5e-4 has 4"):
        infer_dry_run.dry_run(infer_config(pair, "mesh.data=4"), prompt_len=64, fit=False, topology="v5e-4")
    with pytest.raises(UserError, match="--topology v5e-4 has 4 chips"):
        train_dry_run.dry_run(load_train_config(SMOKE, ["mesh.data=8"]), fit=False, topology="v5e-4")


def test_largest_rows_searches_within_its_compiles():
    limit = 37  # rows that fit; peak = 10 + 2 per row, HBM 84 (linear) -> 37

    def peak_at(n):
        return 10 + 2 * n if n <= limit else None
    got = chip_fit.largest_rows(peak_at, 4, peak_at(4), hbm=84, compiles=6)
    assert (got.rows, got.exact) == (37, True) and got.tried[:2] == ((8, True), (37, True))
    assert chip_fit.largest_rows(peak_at, 64, None, hbm=84, compiles=2).rows == 32  # halved twice: 32 fits, not exact
    assert chip_fit.largest_rows(lambda n: None, 1, None, hbm=84).rows == 0
