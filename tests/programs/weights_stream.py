"""Run by tests/test_weights_stream.py on 6 simulated CPU devices: `weights_stream.py SINGLE INDEX TMP` streams the
tiny checkpoints SINGLE (one file) and INDEX (sharded) onto a data 2 x tensor 3 mesh, compares with load_model, and
prints what each device holds and read as one RESULT line; TMP is a scratch folder (for a GGUF cache entry)."""

import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from pard_jax.models.layout import unstack_layers
from pard_jax.weights import store, stream
from pard_jax.weights.sources import load_model

SINGLE, INDEX, TMP = sys.argv[1:4]

assert len(jax.devices()) == 6, jax.devices()
mesh = jax.make_mesh((2, 3), ("data", "tensor"))
COLUMNS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")


def spec_of(path):  # heads / MLP / vocab over "tensor", norms replicated; kernels are [out, in]
    if path in ("embed", "lm_head") or (path.endswith("kernel") and any(c in path for c in COLUMNS)):
        return P("tensor", None)
    if path.endswith("kernel"):  # o_proj, down_proj: their input (heads / MLP) axis
        return P(None, "tensor")
    return P()


def sharding_of(path, shape):
    return NamedSharding(mesh, spec_of(path))


reads = []  # (tensor key, elements read, elements of one param)
read_slice = stream._read_slice


def counting(handle, key, index):
    a = read_slice(handle, key, index)
    full = handle.get_slice(key).get_shape()
    reads.append((key, a.size, math.prod(full[1:] if key.startswith("layers/") else full)))
    return a


stream._read_slice = counting


def flat(tree):
    return traverse_util.flatten_dict(tree, sep="/")


ref = load_model(SINGLE)
want = {k: np.asarray(v) for k, v in flat(unstack_layers(ref.params)).items()}


def compare(params, dtype=np.float32, layers=None):
    got = flat(params)
    keys = {k for k in want if layers is None or not k.startswith("layers_") or int(k[7:].split("/")[0]) < layers}
    assert set(got) == keys, sorted(set(got) ^ keys)
    return all(got[k].dtype == dtype and np.array_equal(np.asarray(got[k]), want[k].astype(dtype))
               for k in keys)


out = {}
m = stream.stream_model(SINGLE, jnp.float32, sharding_of)
out["tokenizer_source"], out["spec"], out["cfg_same"] = m.tokenizer_source, m.spec, m.cfg == ref.cfg
out["f32"] = compare(m.params)
out["reads"] = reads[:]
# Bytes held: each tensor-sharded leaf's shard is a third of it on every device; per device, the sum.
sharded = replicated = 0
per_device, thirds = {}, True
for path, a in flat(m.params).items():
    split = spec_of(path) != P()
    sharded, replicated = sharded + split * a.nbytes, replicated + (not split) * a.nbytes
    for s in a.addressable_shards:
        thirds &= (not split) or s.data.nbytes * 3 == a.nbytes
        per_device[str(s.device)] = per_device.get(str(s.device), 0) + s.data.nbytes
out.update(thirds=thirds, sharded=sharded, replicated=replicated, per_device=per_device,
           specs=sorted({tuple(a.sharding.spec) for a in jax.tree.leaves(m.params)}, key=str))
out["bf16"] = compare(stream.stream_model(SINGLE, jnp.bfloat16, sharding_of).params, jnp.bfloat16)
out["index"] = compare(stream.stream_model(INDEX, jnp.float32, sharding_of).params)
short = stream.stream_model(INDEX, jnp.float32, sharding_of, num_layers=2)
out["index_short"] = compare(short.params, layers=2) and short.cfg.num_layers == 2
# A GGUF cache entry: stacked [L, ...] float32 params under their param paths.
folder = Path(TMP) / "cache"
store.write_params(folder, ref.cfg, flat(ref.params))
del reads[:]
cfg, params = stream._stream_cache(folder, jnp.float32, sharding_of, None)
out["cache"] = compare(params) and cfg == ref.cfg
out["cache_reads"] = reads[:]
cfg, params = stream._stream_cache(folder, jnp.bfloat16, sharding_of, 1)
out["cache_short"] = compare(params, jnp.bfloat16, layers=1) and cfg.num_layers == 1
print("RESULT " + json.dumps(out))
