"""The one table between HF tensor names and the params tree of `pard_jax.models.decoder`.

`RULES` maps HF tensor names to param paths and declares each param's logical axes; `weights.convert` walks it
forwards (loading any source: safetensors directories, GGUF files viewed as HF checkpoints by `weights.gguf`)
and `params_to_hf` inverts it (export). Per-layer tensors `model.layers.{i}.…` are stacked along axis 0 of the
scanned `layers` subtree.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable

import jax
import numpy as np
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from pard_jax.errors import UserError
from pard_jax.models import decoder, layout
from pard_jax.models.config import ModelConfig


def layer_regex(template: str) -> re.Pattern:
    """A name template with "{i}" (the layer index) as a regex whose group `i` captures that index."""
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)"))


@dataclasses.dataclass(frozen=True)
class Rule:
    """HF tensor `hf` ("{i}": the layer index) <-> param `path`, whose logical axes are `axes`.

    `transpose`: HF Linear weights are [out, in], Flax Dense kernels [in, out]. No reshape is needed: the
    model's q/k/v/o kernels are flat [D, H*Dh] / [H*Dh, D], the same element order as HF's.
    `axes`: the param's logical axes in the training layout, one layer's (`logical_axes` gives both layouts').
    """

    hf: str
    path: str
    axes: tuple[str, ...]
    transpose: bool = False

    @property
    def layered(self) -> bool:
        return "{i}" in self.hf

    def convert(self, a: np.ndarray) -> np.ndarray:
        """HF layout -> param layout, and back: a transpose is its own inverse."""
        return a.T if self.transpose else a

    def convert_index(self, index: tuple) -> tuple:
        """`convert` for a shape or an index (a tuple of slices): a transpose reverses the axes."""
        return tuple(reversed(index)) if self.transpose else tuple(index)


def _dense(hf: str, path: str, axes: tuple[str, str]) -> tuple[Rule, Rule]:
    """A Linear layer: its weight (Flax [in, out]) and its bias."""
    return (Rule(f"{hf}.weight", f"{path}/kernel", axes, transpose=True),
            Rule(f"{hf}.bias", f"{path}/bias", axes[-1:]))


_L = "model.layers.{i}."
_HEADS = {"q": "q_heads", "k": "kv_heads", "v": "kv_heads"}
RULES: tuple[Rule, ...] = (
    Rule("model.embed_tokens.weight", "embed", ("vocab", "embed")),
    Rule("model.norm.weight", "final_norm/scale", ("norm",)),
    Rule("lm_head.weight", "lm_head", ("embed", "vocab"), transpose=True),
    Rule(_L + "input_layernorm.weight", "layers/input_norm/scale", ("norm",)),
    Rule(_L + "post_attention_layernorm.weight", "layers/post_attn_norm/scale", ("norm",)),
    *(r for p, heads in _HEADS.items() for r in _dense(_L + f"self_attn.{p}_proj", f"layers/attn/{p}_proj",
                                                         ("embed", heads))),
    *_dense(_L + "self_attn.o_proj", "layers/attn/o_proj", ("q_heads", "embed")),
    Rule(_L + "self_attn.q_norm.weight", "layers/attn/q_norm/scale", ("norm",)),
    Rule(_L + "self_attn.k_norm.weight", "layers/attn/k_norm/scale", ("norm",)),
    *_dense(_L + "mlp.gate_proj", "layers/mlp/gate_proj", ("embed", "mlp")),
    *_dense(_L + "mlp.up_proj", "layers/mlp/up_proj", ("embed", "mlp")),
    *_dense(_L + "mlp.down_proj", "layers/mlp/down_proj", ("mlp", "embed")),
    # A PARD-2 draft's projection of the target's features (in warp_model.bin: `weights.hf.WARP_MODEL`)
    *_dense("target_proj", "target_proj", ("features", "embed")),
)
# A sub-vocabulary draft's head (`ModelConfig.draft_vocab`): rows draft_vocab of its output layer, HF's [V, D]
# lm_head (a compact draft stores only those rows) or, tied, of the embedding table.
SUB_HEAD = Rule("lm_head.weight", "draft_head", ("vocab", "embed"))
_AXES = {rule.path: rule.axes for rule in (*RULES, SUB_HEAD)}


def logical_axes(path: str, stacked: bool) -> P:
    """The logical axes of the param at `path` ("/"-joined) of the stacked (training) layout ("layers/mlp/up_proj/
    kernel": [L, in, out]) or of the per-layer (decoding) layout ("layers_3/mlp/up_proj/kernel": [out, in])."""
    top, _, rest = path.partition("/")
    if stacked:
        return P("layers", *_AXES[path]) if top == "layers" else P(*_AXES[path])
    axes = _AXES[f"layers/{rest}" if top.startswith("layers_") else path]
    return P(*(axes[::-1] if layout.out_major(path) else axes))


# A compact draft's own rows of its embedding table (the rest is its target's), e.g. a learned mask embedding:
# [R, D] and their ids [R] (`weights.export.export_hf`).
EMBED_ROWS, EMBED_ROW_IDS = "pard.embed_rows.weight", "pard.embed_rows.ids"
_RULE_REGEXES = tuple((layer_regex(rule.hf), rule) for rule in RULES)
# Tensors some checkpoints carry that the model recomputes.
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq|model\.rotary_emb\.inv_freq")


def match_rule(name: str) -> tuple[Rule, int | None] | None:
    for rx, rule in _RULE_REGEXES:
        m = rx.fullmatch(name)
        if m:
            return rule, (int(m.group("i")) if rule.layered else None)
    return None


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """{param path: shape} of `pard_jax.models.decoder` for this config (traced, nothing allocated)."""
    tree = jax.eval_shape(lambda: decoder.init_params(cfg, jax.random.key(0)))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def tensor_target(cfg: ModelConfig, shapes: dict[str, tuple[int, ...]], keep: int, name: str,
                  source: str) -> tuple[Rule, int | None] | None:
    """(rule, layer index) that puts HF tensor `name` into params of `shapes` (`expected_shapes` of `cfg` kept
    to `keep` layers), or None for a tensor not kept (rotary tables, a tied model's head, layers past `keep`).

    A sub-vocabulary draft's lm_head comes back with a path not in `shapes`: the caller derives draft_head.
    Anything the config does not have is a UserError.
    """
    hit = match_rule(name)
    if hit is None:
        if _IGNORED.fullmatch(name):
            return None
        raise UserError(f"{source} has a tensor {name!r} that a {cfg.architecture} with this config does not "
                        "have; check that config.json matches the weights")
    rule, i = hit
    if rule.path not in shapes:
        if rule.path == "lm_head" and cfg.draft_vocab is not None and not cfg.tie_word_embeddings:
            return hit
        if rule.path == "lm_head" and cfg.tie_word_embeddings:
            return None  # some tied checkpoints also store the (identical) head
        raise UserError(f"{source} has a tensor {name!r} that its config rules out (bias/qk-norm/tied "
                        "settings); check that config.json matches the weights")
    if i is not None and i >= cfg.num_layers:
        raise UserError(f"{source} has a tensor {name!r} for layer {i}, but its config says "
                        f"{cfg.num_layers} layers; check that config.json matches the weights")
    if i is not None and i >= keep:
        return None
    return hit


def check_shape(rule: Rule, i: int | None, name: str, hf_shape: tuple[int, ...],
                shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """HF tensor `name` (layer `i`) of `hf_shape` (HF layout) must fit its param in `shapes`."""
    want = shapes[rule.path][1:] if i is not None else shapes[rule.path]
    if rule.convert_index(tuple(hf_shape)) != want:
        raise UserError(f"{source}: tensor {name!r} has shape {tuple(hf_shape)} but the config "
                        f"implies {rule.convert_index(want)}; check that config.json matches the weights")


def check_complete(shapes: dict[str, tuple[int, ...]], have: Iterable[str], filled: dict[str, set[int]],
                   keep: int, source: str) -> None:
    """Every param of `shapes` is in `have`, and every layered one (`filled`: its layers seen) has `keep` layers."""
    have = set(have)
    missing = [p for p in shapes if p not in have]
    missing += [f"{p}[layer {i}]" for p, s in filled.items() for i in range(keep) if i not in s]
    if missing == ["embed"]:
        raise UserError(f"{source} is a compact draft without an embedding table; load it as a draft together "
                        "with its target (infer/generate.py --draft), which supplies the table")
    if missing:
        raise UserError(f"{source} lacks tensors for {', '.join(missing[:4])}"
                        f"{' …' if len(missing) > 4 else ''}; check that config.json matches the weights")


def params_to_hf(params: dict, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """The inverse of `weights.convert.hf_to_params`: {HF tensor name: numpy array (HF layout)}. Either layer
    layout."""
    flat = {k: np.asarray(jax.device_get(v))
            for k, v in traverse_util.flatten_dict(layout.stack_layers(params), sep="/").items()}
    out: dict[str, np.ndarray] = {}
    used = set()
    for rule in RULES:
        if rule.path not in flat:
            continue
        a = flat[rule.path]
        used.add(rule.path)
        if rule.layered:
            if a.shape[0] != cfg.num_layers:
                raise UserError(f"params have {a.shape[0]} layers but the config says {cfg.num_layers}; "
                                "export with the config the params were made for")
            for i in range(a.shape[0]):
                out[rule.hf.format(i=i)] = np.ascontiguousarray(rule.convert(a[i]))
        else:
            out[rule.hf] = np.ascontiguousarray(rule.convert(a))
    if "draft_head" in flat:
        # The sub-vocabulary head is the output layer's rows at cfg.draft_vocab. When it equals the tied table's
        # rows it needs no tensor; a trained one goes out as an untied lm_head (other rows: the table's).
        used.add("draft_head")
        ids = np.asarray(cfg.draft_vocab)
        head = flat["draft_head"]
        if not (cfg.tie_word_embeddings and np.array_equal(head, flat["embed"][ids])):
            full = np.array(flat["embed"])  # a draft_vocab model has no lm_head param
            full[ids] = head
            out["lm_head.weight"] = np.ascontiguousarray(full)
    unknown = sorted(set(flat) - used)
    if unknown:
        raise UserError(f"params have entries with no HF name: {', '.join(unknown[:4])}; "
                        "export only pard_jax.models.decoder params")
    return out
