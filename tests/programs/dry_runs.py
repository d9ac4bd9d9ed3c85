"""Run by tests/test_dry_run.py on 8 simulated CPU devices: the dry run (`--dry-run`) of every shipped training
and inference config with the models cut to one layer, through the programs or the library; one RESULT line with
each report and a few numbers from inside the results."""

import contextlib
import glob
import io
import json
import os

import jax

from pard_jax.cli import generate, train
from pard_jax.config_io import load_config
from pard_jax.speculative import infer_dry_run
from pard_jax.speculative.config import InferConfig
from pard_jax.training import train_dry_run
from pard_jax.training.config import load_train_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

assert len(jax.devices()) == 8


def cli(main, *argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()[-2000:]}


res = {"train": {}, "infer": {}}
for path in sorted(glob.glob(os.path.join(REPO, "configs/train/*.yaml"))):
    name = os.path.basename(path)
    cut = [] if name == "smoke.yaml" else ["model.num_layers=1"]  # smoke: an inline 2-layer model
    if name.startswith(("smollm2_pard_draft", "smollm2_pard2_draft")):  # 4 rows per step: data 4 x tensor 2 (8 data shards are refused)
        cut.append("mesh.tensor=2")
    if name == "smollm2_pard2_draft.yaml":  # it starts from an export of the v2 run; the shipped draft has its shapes
        cut.append("model.spec=smollm2-135m-pard")
    if name == "pard_qwen2.5_0.5b.yaml":  # through the library, to look inside the result too
        r = train_dry_run.dry_run(load_train_config(path, cut), fit=False)
        res["train"][name] = {"rc": 0, "out": train_dry_run.report(r), "err": ""}
        res["split"] = dict(arguments=r.memory.arguments, parts=r.param_bytes + r.opt_bytes + r.batch_bytes,
                            params=r.param_bytes, num_params=r.num_params, mesh=r.mesh)
        continue
    fit = [] if name == "pard_llama3.2_1b.yaml" else ["--no-fit"]
    res["train"][name] = cli(train.main, "--config", path, "--dry-run", *fit, *cut)
for path in [*sorted(glob.glob(os.path.join(REPO, "configs/infer/*.yaml"))), "default"]:
    name = os.path.basename(path)
    if name == "pard_llama3.1_8b.yaml":  # on a 2 x 4 mesh too: what one device of it holds
        one = infer_dry_run.dry_run(load_config(InferConfig, path), prompt_len=64, layers=1, fit=False)
        r = infer_dry_run.dry_run(load_config(InferConfig, path, ["mesh.data=2", "mesh.tensor=4"]),
                                  prompt_len=64, layers=1, fit=False)
        res["infer"][name] = {"rc": 0, "out": infer_dry_run.report(r, layers=1), "err": ""}
        res["mesh"] = dict(params=[one.param_bytes, r.param_bytes], batch=r.batch,
                           cache=[list(one.programs.cache_bytes), list(r.programs.cache_bytes)])
        continue
    if name == "pard_qwen3_8b.yaml":  # through the library, to look inside the result too
        r = infer_dry_run.dry_run(load_config(InferConfig, path, ["batch_size=2"]), prompt_len=64, layers=1,
                                  fit=False)
        res["infer"][name] = {"rc": 0, "out": infer_dry_run.report(r, layers=1), "err": ""}
        res["cache"] = dict(got=list(r.programs.cache_bytes), capacity=r.capacity)
        continue
    config = [] if path == "default" else ["--config", path]
    fit = [] if path == "default" else ["--no-fit"]
    res["infer"][name] = cli(generate.main, *config, "--dry-run", "--dry-run-layers", "1", "--prompt-len", "64",
                             *fit)
print("RESULT " + json.dumps(res))
