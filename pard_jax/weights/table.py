"""The one table between HF tensor names and the params tree of `pard_jax.models.decoder`.

`RULES` maps HF tensor names to param paths; `hf_to_params` applies it forwards (loading any source:
safetensors directories, GGUF files viewed as HF checkpoints by `weights.gguf`) and `params_to_hf` inverts it
(export). Per-layer tensors `model.layers.{i}.…` are stacked along axis 0 of the scanned `layers` subtree.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig


def layer_regex(template: str) -> re.Pattern:
    """A name template with "{i}" (the layer index) as a regex whose group `i` captures that index."""
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)"))


@dataclasses.dataclass(frozen=True)
class Rule:
    """HF tensor `hf` ("{i}": the layer index) <-> param `path`.

    `transpose`: HF Linear weights are [out, in], Flax Dense kernels [in, out]. No reshape is needed: the
    model's q/k/v/o kernels are flat [D, H*Dh] / [H*Dh, D], the same element order as HF's.
    """

    hf: str
    path: str
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


_L = "model.layers.{i}."
RULES: tuple[Rule, ...] = (
    Rule("model.embed_tokens.weight", "embed"),
    Rule("model.norm.weight", "final_norm/scale"),
    Rule("lm_head.weight", "lm_head", transpose=True),
    Rule(_L + "input_layernorm.weight", "layers/input_norm/scale"),
    Rule(_L + "post_attention_layernorm.weight", "layers/post_attn_norm/scale"),
    *(r for p in ("q", "k", "v", "o") for r in (
        Rule(_L + f"self_attn.{p}_proj.weight", f"layers/attn/{p}_proj/kernel", transpose=True),
        Rule(_L + f"self_attn.{p}_proj.bias", f"layers/attn/{p}_proj/bias"),
    )),
    Rule(_L + "self_attn.q_norm.weight", "layers/attn/q_norm/scale"),
    Rule(_L + "self_attn.k_norm.weight", "layers/attn/k_norm/scale"),
    *(r for p in ("gate", "up", "down") for r in (
        Rule(_L + f"mlp.{p}_proj.weight", f"layers/mlp/{p}_proj/kernel", transpose=True),
        Rule(_L + f"mlp.{p}_proj.bias", f"layers/mlp/{p}_proj/bias"),
    )),
)
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
    from pard_jax.models.decoder import init_params

    tree = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
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


def hf_to_params(cfg: ModelConfig, names: Iterable[str], get: Callable[[str], np.ndarray], dtype=jnp.float32,
                 num_layers: int | None = None, source: str = "the checkpoint", shared_embed=None) -> dict:
    """Convert HF-named tensors to the params tree (numpy leaves in `dtype`), keeping `num_layers` layers.

    `cfg` describes the whole checkpoint; layers at or past `num_layers` are not read. A compact draft stores
    no embedding table: `shared_embed` (the target's [V, D] table) fills it when the checkpoint lacks one.
    """
    keep = cfg.num_layers if num_layers is None else num_layers
    shapes = expected_shapes(cfg.truncated(keep))
    np_dtype = np.dtype(dtype)
    flat: dict[str, np.ndarray] = {}
    filled: dict[str, set[int]] = {}
    full_head = None  # a sub-vocabulary draft's whole-vocabulary lm_head, from which draft_head is taken
    own_rows = {}  # a compact draft's own embedding rows
    for name in names:
        if name in (EMBED_ROWS, EMBED_ROW_IDS):
            own_rows[name] = np.asarray(get(name))
            continue
        hit = tensor_target(cfg, shapes, keep, name, source)
        if hit is None:
            continue
        rule, i = hit
        if rule.path not in shapes:  # the lm_head of a sub-vocabulary draft
            head = np.asarray(get(name))  # [V, D], or [N, D] in a compact draft: the sub-vocabulary rows only
            if head.shape == shapes["draft_head"]:
                flat["draft_head"] = np.ascontiguousarray(head, dtype=np_dtype)
            else:
                full_head = rule.convert(head)  # [D, V]
            continue
        shape = shapes[rule.path]
        a = np.asarray(get(name))
        check_shape(rule, i, name, a.shape, shapes, source)
        a = rule.convert(a)
        if i is None:
            flat[rule.path] = np.ascontiguousarray(a, dtype=np_dtype)
        else:
            if rule.path not in flat:
                flat[rule.path] = np.empty(shape, np_dtype)
            flat[rule.path][i] = a
            filled.setdefault(rule.path, set()).add(i)
    if "embed" not in flat and shared_embed is not None:
        if tuple(shared_embed.shape) != shapes["embed"]:
            raise UserError(f"{source} has no embedding table and the target's {tuple(shared_embed.shape)} does "
                            f"not fit its config {shapes['embed']}; use the target it was trained with")
        flat["embed"] = np.array(shared_embed, dtype=np_dtype)  # a copy: own rows may be written into it
    if own_rows:
        if set(own_rows) != {EMBED_ROWS, EMBED_ROW_IDS} or "embed" not in flat:
            raise UserError(f"{source} has embedding rows of its own but no table to put them in (or lacks their "
                            "ids); load it as a draft with its target, or re-export it")
        ids, rows = own_rows[EMBED_ROW_IDS].astype(np.int64), own_rows[EMBED_ROWS]
        if ids.ndim != 1 or rows.shape != (len(ids), shapes["embed"][1]) or ids.min(initial=0) < 0 \
                or ids.max(initial=0) >= shapes["embed"][0]:
            raise UserError(f"{source}: its own embedding rows {tuple(rows.shape)} / ids {tuple(ids.shape)} do not "
                            f"fit the table {shapes['embed']}; re-export the draft")
        flat["embed"][ids] = rows
    if cfg.draft_vocab is not None and "draft_head" not in flat:
        ids = np.asarray(cfg.draft_vocab)
        if full_head is not None:
            flat["draft_head"] = np.ascontiguousarray(full_head[:, ids].T, dtype=np_dtype)
        elif "embed" in flat and cfg.tie_word_embeddings:
            flat["draft_head"] = np.ascontiguousarray(flat["embed"][ids])
    check_complete(shapes, flat, filled, keep, source)
    return traverse_util.unflatten_dict(flat, sep="/")


def params_to_hf(params: dict, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`: {HF tensor name: numpy array (HF layout)}. Either layer layout."""
    from pard_jax.models.layout import stack_layers

    flat = {k: np.asarray(jax.device_get(v))
            for k, v in traverse_util.flatten_dict(stack_layers(params), sep="/").items()}
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
