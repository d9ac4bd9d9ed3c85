"""The conversion table's walker: the logical axes declared beside the params are the Flax modules' own, and each
lazy param reads any part of itself (a device's shard) as the same part of the whole."""

import dataclasses

import numpy as np
import pytest
from flax import traverse_util

from pard_jax.models.config import ModelConfig, Pard2
from pard_jax.models.decoder import param_logical_axes
from pard_jax.models.layout import Layout
from pard_jax.weights import lazy, table


def _cfg(arch="LlamaForCausalLM", **kw):
    base = dict(architecture=arch, vocab_size=40, hidden_size=16, intermediate_size=24, num_layers=2, num_heads=4,
                num_kv_heads=2, head_dim=4)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("cfg", [
    _cfg(),
    _cfg(qkv_bias=True, o_bias=True, mlp_bias=True),
    _cfg("Qwen2ForCausalLM", qkv_bias=True, tie_word_embeddings=True),
    _cfg("Qwen3ForCausalLM", qk_norm=True, tie_word_embeddings=True),
    _cfg(tie_word_embeddings=True, draft_vocab=(1, 5, 6, 30)),
    _cfg(draft_vocab=(0, 2, 39)),
    _cfg(tie_word_embeddings=True, pard2=Pard2((-1, 1), 32, proj_bias=True)),
], ids=["llama-untied", "llama-all-biases", "qwen2-tied", "qwen3-tied", "sub-vocabulary-tied",
        "sub-vocabulary-untied", "pard2"])
@pytest.mark.parametrize("stacked", [True, False], ids=["stacked", "per-layer"])
def test_declared_axes_are_the_modules(cfg, stacked):
    layout = Layout.STACKED if stacked else Layout.PER_LAYER
    flax_axes = traverse_util.flatten_dict(param_logical_axes(cfg, layout), sep="/")
    assert flax_axes and all(table.logical_axes(path, stacked) == spec for path, spec in flax_axes.items()), \
        {path: (table.logical_axes(path, stacked), spec) for path, spec in flax_axes.items()}


def test_a_path_with_no_param_is_refused():
    with pytest.raises(KeyError):
        table.logical_axes("layers_0/attn/x_proj/kernel", stacked=False)


def _parts(shape, rng, n=12):
    """Random parts (a slice per axis, as a device's shard), the whole and empty ones among them."""
    yield lazy.whole(shape)
    yield tuple(slice(0, 0) if i == 0 else slice(None) for i in range(len(shape)))
    for _ in range(n):
        bounds = [sorted(rng.integers(0, d + 1, 2)) for d in shape]
        yield tuple(slice(int(a), int(b)) for a, b in bounds)


@dataclasses.dataclass
class _Counting:
    """In-memory tensors that record each part read."""

    arrays: dict
    reads: list = dataclasses.field(default_factory=list)

    def names(self):
        return list(self.arrays)

    def shape(self, name):
        return self.arrays[name].shape

    def read(self, name, index):
        self.reads.append((name, index))
        return self.arrays[name][index]


def test_every_lazy_kind_reads_a_part_as_that_part_of_the_whole():
    rng = np.random.default_rng(0)
    stacked = rng.standard_normal((3, 5, 7)).astype(np.float32)
    table_ = rng.standard_normal((11, 6)).astype(np.float32)
    src = _Counting({"w": stacked[0], "stacked": stacked, "table": table_})
    w, s, t = (lazy.tensor(src, k) for k in ("w", "stacked", "table"))
    ids = np.array([0, 1, 2, 5, 9, 10])
    own_ids, own = np.array([1, 9]), rng.standard_normal((2, 6)).astype(np.float32)
    patched = table_.copy()
    patched[own_ids] = own
    cases = {
        "transposed": (lazy.transposed(w), stacked[0].T),
        "twice transposed": (lazy.transposed(lazy.transposed(w)), stacked[0]),
        "layer": (lazy.layer(s, 2), stacked[2]),
        "stack": (lazy.Stack((lazy.layer(s, 2), w)), np.stack([stacked[2], stacked[0]])),
        "first layers": (lazy.first_layers(s, 2), stacked[:2]),
        "rows": (lazy.Rows(t, ids), table_[ids]),
        "patched": (lazy.Patched(t, own_ids, own), patched),
        "rows of patched": (lazy.Rows(lazy.Patched(t, own_ids, own), ids), patched[ids]),
        "array": (lazy.array(table_), table_),
    }
    for name, (a, want) in cases.items():
        assert a.shape == want.shape, name
        for index in _parts(want.shape, rng):
            got = a.read(index, np.float64)
            assert got.dtype == np.float64 and np.array_equal(got, want[index]), (name, index)
    assert lazy.transposed(lazy.transposed(w)) is w
    # A run of consecutive ids is one read; a part of rows reads only the runs it needs.
    del src.reads[:]
    lazy.Rows(t, ids).read((slice(3, 6), slice(None)), np.float32)
    assert [i[0] for _, i in src.reads] == [slice(5, 6), slice(9, 11)]
    # The table under own rows is not written to.
    lazy.Patched(lazy.array(table_), own_ids, own).read(lazy.whole(table_.shape), np.float32)
    assert not np.array_equal(table_[own_ids], own)
