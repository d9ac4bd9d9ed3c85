"""Run by tests/test_generate_mesh.py on 6 simulated CPU devices: `generate_mesh.py ARGS...` decodes with
`pard_jax.cli.generate ARGS` for each (mode, mesh, sampling), measures the bytes of the target each device holds on
a data 2 x tensor 3 mesh, and has a degree that does not divide the target refused; one RESULT line."""

import contextlib
import io
import json
import sys

import jax

from pard_jax.cli import generate
from pard_jax.errors import UserError
from pard_jax.speculative import setup
from pard_jax.speculative.config import InferConfig

ARGS = sys.argv[1:]
PARD2 = ARGS.pop(ARGS.index("--pard2-draft") + 1) if "--pard2-draft" in ARGS else None  # a PARD-2 draft's dir
if PARD2:
    ARGS.remove("--pard2-draft")


def tokens(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert generate.main([*ARGS, *argv]) == 0
    return [json.loads(line)["token_ids"] for line in out.getvalue().splitlines()]


meshes = {"one": [], "2x3": ["mesh.data=2", "mesh.tensor=3"],
          "2x3/draft3": ["mesh.data=2", "mesh.tensor=3", "mesh.draft_tensor=3"]}
runs = {}
for mode, names in (("ar", ["one", "2x3"]), ("sd", ["one", "2x3/draft3"]), ("pard", ["one", "2x3"])):
    for name in names:
        runs[f"{mode} {name}"] = tokens("--mode", mode, *meshes[name])
for name in ("one", "2x3"):
    runs[f"pard sampling {name}"] = tokens("--mode", "pard", "--temperature", "1", "--seed", "3", *meshes[name])
    if PARD2:  # target-dependent: each row's features follow it over the data axis
        runs[f"pard2 td {name}"] = tokens("--mode", "pard", "--draft", PARD2, "--mask-token-id", "130", *meshes[name])

cfg = InferConfig(target=ARGS[1], mode="ar", dtype="float32")
cfg.mesh.data, cfg.mesh.tensor = 2, 3
params = setup.build(cfg).generator.target_params
per_device, sharded_total, replicated_total = {}, 0, 0
for leaf in jax.tree.leaves(params):
    split = not leaf.sharding.is_fully_replicated
    if split:
        sharded_total += leaf.nbytes
    else:
        replicated_total += leaf.nbytes
    for shard in leaf.addressable_shards:
        per_device[shard.device.id] = per_device.get(shard.device.id, 0) + (shard.data.nbytes if split else 0)

# A degree that does not divide the target is refused before any weight is read.
cfg.mesh.data, cfg.mesh.tensor = 1, 2
setup.load = lambda *a, **k: sys.exit("read weights before refusing mesh.tensor=2")
try:
    setup.build(cfg)
    refused = None
except UserError as e:
    refused = str(e)
print("RESULT " + json.dumps(dict(runs=runs, per_device=per_device, sharded_total=sharded_total,
                                  replicated_total=replicated_total, refused=refused)))
