"""The kernels a program uses are the ones of the platform it is compiled for, not of the machine compiling it."""

from __future__ import annotations

import pytest

from pard_jax.config_io import load_config
from pard_jax.errors import UserError
from pard_jax.models.kernels import Kernels
from pard_jax.speculative import infer_dry_run
from pard_jax.speculative.config import DEFAULT_CONFIG, InferConfig
from pard_jax.speculative.generator import compiled_programs, shape_signature


def test_the_dry_run_compiles_and_reports_the_kernels_of_the_platform_asked_for():
    """On this CPU, the decode loop compiled for GPU-style kernels reads the caches whole (no per-layer block
    loop), the CPU-style one in blocks; the report names them."""
    c = load_config(InferConfig, DEFAULT_CONFIG)
    loops = {}
    for platform in ("cpu", "gpu"):
        r = infer_dry_run.dry_run(c, prompt_len=200, layers=1, fit=False, platform=platform)  # a 384-entry cache
        assert r.loop.kernels == Kernels.for_platform(platform)
        assert f"kernels     {Kernels.for_platform(platform).describe()}" in infer_dry_run.report(r, layers=1)
        tp = infer_dry_run.abstract_params(r.loop.target_cfg, r.loop.dtype)
        dp = infer_dry_run.abstract_params(r.loop.draft_cfg, r.loop.dtype)
        _, run = compiled_programs(r.loop, r.batch, r.prompt_len, shape_signature(tp), shape_signature(dp))
        loops[platform] = run.as_text().count(" while(")
    # the decode loop itself, and on the CPU one block loop per attention call (target and draft, one layer each)
    assert loops["gpu"] >= 1 and loops["cpu"] >= loops["gpu"] + 2, loops


def test_an_unknown_platform_is_refused():
    with pytest.raises(UserError, match="unknown platform 'npu'; choose one of cpu, gpu, tpu"):
        Kernels.for_platform("npu")
