"""Model weights in and out: HF safetensors directories, GGUF files, the SmolLM2 alias, HF export.

One declarative table (`RULES`) maps HF tensor names to paths in `pard_jax.model`'s params tree; loading
applies it forwards and `export_hf` inverts it. Per-layer tensors `model.layers.{i}.…` are stacked along
axis 0 of the scanned `layers` subtree. GGUF files are first viewed as HF checkpoints by
`pard_jax.gguf_weights` (renamed, dequantized, q/k rows un-permuted), then go through the same table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from pard_jax import gguf_weights
from pard_jax.errors import UserError
from pard_jax.gguf_weights import SMOLLM2_ALIAS  # noqa: F401  (re-exported)
from pard_jax.model_config import ModelConfig

# The PARD draft for SmolLM2-135M-Instruct that this repository ships (configs/train/smollm2_pard_draft.yaml).
SMOLLM2_DRAFT_ALIAS = "smollm2-135m-pard"
SMOLLM2_DRAFT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "drafts",
                                 SMOLLM2_DRAFT_ALIAS)

__all__ = ["SMOLLM2_ALIAS", "SMOLLM2_DRAFT_ALIAS", "LoadedModel", "load_model", "export_hf", "RULES", "hf_to_params",
           "params_to_hf"]


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

    @property
    def regex(self) -> re.Pattern:
        return re.compile(re.escape(self.hf).replace(r"\{i\}", r"(?P<i>\d+)"))

    def to_param(self, a: np.ndarray) -> np.ndarray:
        return a.T if self.transpose else a

    def to_hf(self, a: np.ndarray) -> np.ndarray:
        return a.T if self.transpose else a


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
_RULE_REGEXES = tuple((rule.regex, rule) for rule in RULES)
# Tensors some checkpoints carry that the model recomputes.
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq|model\.rotary_emb\.inv_freq")


def match_rule(name: str) -> tuple[Rule, int | None] | None:
    for rx, rule in _RULE_REGEXES:
        m = rx.fullmatch(name)
        if m:
            return rule, (int(m.group("i")) if rule.layered else None)
    return None


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """{param path: shape} of `pard_jax.model` for this config (traced, nothing allocated)."""
    from pard_jax.model import init_params

    tree = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


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
    for name in names:
        hit = match_rule(name)
        if hit is None:
            if _IGNORED.fullmatch(name):
                continue
            raise UserError(f"{source} has a tensor {name!r} that a {cfg.architecture} with this config does not "
                            "have; check that config.json matches the weights")
        rule, i = hit
        if rule.path not in shapes:
            if rule.path == "lm_head" and cfg.tie_word_embeddings:
                continue  # some tied checkpoints also store the (identical) head
            raise UserError(f"{source} has a tensor {name!r} that its config rules out (bias/qk-norm/tied "
                            "settings); check that config.json matches the weights")
        shape = shapes[rule.path]
        if i is not None and i >= cfg.num_layers:
            raise UserError(f"{source} has a tensor {name!r} for layer {i}, but its config says "
                            f"{cfg.num_layers} layers; check that config.json matches the weights")
        if i is not None and i >= keep:
            continue
        a = rule.to_param(np.asarray(get(name)))
        want = shape[1:] if i is not None else shape
        if tuple(a.shape) != want:
            hf_shape = tuple(rule.to_hf(np.empty(want, np.int8)).shape)
            raise UserError(f"{source}: tensor {name!r} has shape {tuple(rule.to_hf(a).shape)} but the config "
                            f"implies {hf_shape}; check that config.json matches the weights")
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
        flat["embed"] = np.asarray(shared_embed, dtype=np_dtype)
    missing = [p for p in shapes if p not in flat]
    missing += [f"{p}[layer {i}]" for p, s in filled.items() for i in range(keep) if i not in s]
    if missing == ["embed"]:
        raise UserError(f"{source} is a compact draft without an embedding table; load it as a draft together "
                        "with its target (infer/generate.py --draft), which supplies the table")
    if missing:
        raise UserError(f"{source} lacks tensors for {', '.join(missing[:4])}"
                        f"{' …' if len(missing) > 4 else ''}; check that config.json matches the weights")
    return traverse_util.unflatten_dict(flat, sep="/")


def params_to_hf(params: dict, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`: {HF tensor name: numpy array (HF layout)}."""
    flat = {k: np.asarray(jax.device_get(v)) for k, v in traverse_util.flatten_dict(params, sep="/").items()}
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
                out[rule.hf.format(i=i)] = np.ascontiguousarray(rule.to_hf(a[i]))
        else:
            out[rule.hf] = np.ascontiguousarray(rule.to_hf(a))
    unknown = sorted(set(flat) - used)
    if unknown:
        raise UserError(f"params have entries with no HF name: {', '.join(unknown[:4])}; "
                        "export only pard_jax.model params")
    return out


# ----------------------------------------------------------------------------------------------- loading


@dataclasses.dataclass
class LoadedModel:
    cfg: ModelConfig
    params: dict  # jnp arrays in the requested dtype, the tree of pard_jax.model
    tokenizer_source: str  # what pard_jax.tokenizer.load_tokenizer takes for this model
    spec: str


def _to_jnp(tree: dict) -> dict:
    return jax.tree_util.tree_map(jnp.asarray, tree)


def _hf_dir_tensors(directory: str) -> tuple[list[str], Callable[[str], np.ndarray], Callable[[], None]]:
    """(names, get, close) over the safetensors of an HF directory (single file or sharded index)."""
    from safetensors import safe_open

    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(single):  # transformers' order: the single file wins over an index
        files, weight_map = ["model.safetensors"], None
    elif os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map: dict[str, str] = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"cannot read {index} ({e}); pass an intact model directory") from e
        files = sorted(set(weight_map.values()))
    else:
        others = sorted(p.name for p in Path(directory).glob("*.safetensors"))
        if not others:
            bins = [p.name for p in Path(directory).glob("*.bin")]
            hint = " (it has PyTorch .bin weights: re-save them with save_pretrained(safe_serialization=True))" \
                if bins else ""
            raise UserError(f"{directory} has no model.safetensors or model.safetensors.index.json{hint}; "
                            "pass a directory with safetensors weights")
        files, weight_map = others, None
    handles = {}
    try:
        for fn in files:
            handles[fn] = safe_open(os.path.join(directory, fn), framework="numpy")
    except Exception as e:
        raise UserError(f"cannot read the safetensors files in {directory} ({e}); pass an intact model directory") \
            from e
    if weight_map is None:
        weight_map = {k: fn for fn, h in handles.items() for k in h.keys()}

    def get(name: str) -> np.ndarray:
        return handles[weight_map[name]].get_tensor(name)

    def close():
        for h in handles.values():
            if hasattr(h, "__exit__"):
                h.__exit__(None, None, None)

    return list(weight_map), get, close


def _with_generation_eos(directory: str, eos: tuple[int, ...]) -> tuple[int, ...]:
    """config.json's eos ids plus generation_config.json's (chat models often list their end-of-turn there)."""
    try:
        with open(os.path.join(directory, "generation_config.json")) as f:
            extra = json.load(f).get("eos_token_id")
    except (OSError, ValueError):
        return eos
    extra = extra if isinstance(extra, list) else ([] if extra is None else [extra])
    return tuple(dict.fromkeys([*eos, *(int(e) for e in extra)]))


def load_hf_dir(directory: str, dtype=jnp.float32, num_layers: int | None = None, spec: str | None = None,
                shared_embed=None) -> LoadedModel:
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise UserError(f"{directory} has no config.json; pass an HF model directory (config.json + "
                        "model.safetensors) or a .gguf file")
    try:
        with open(config_path) as f:
            hf_cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {config_path} ({e}); pass a directory with a valid config.json") from e
    cfg = ModelConfig.from_hf_dict(hf_cfg)
    cfg = dataclasses.replace(cfg, eos_token_ids=_with_generation_eos(directory, cfg.eos_token_ids))
    names, get, close = _hf_dir_tensors(directory)
    try:
        params = hf_to_params(cfg, names, get, dtype, num_layers, source=directory, shared_embed=shared_embed)
    finally:
        close()
    if num_layers is not None:
        cfg = cfg.truncated(num_layers)
    return LoadedModel(cfg=cfg, params=_to_jnp(params), tokenizer_source=directory, spec=spec or directory)


_PARAMS_FILE = "params.safetensors"
_CONFIG_FILE = "pard_config.json"


def load_gguf(path: str, dtype=jnp.float32, num_layers: int | None = None, spec: str | None = None,
              use_cache: bool = True) -> LoadedModel:
    """A GGUF file, dequantized to float32 once and cached (converted params + config), then cast to `dtype`."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    cache = gguf_weights.gguf_cache_dir(path) / "params" if use_cache else None
    flat: dict[str, np.ndarray] | None = None
    cfg = None
    if cache is not None and (cache / _PARAMS_FILE).is_file():
        try:
            cfg = gguf_weights.config_from_json((cache / _CONFIG_FILE).read_text())
            keep = cfg.num_layers if num_layers is None else num_layers
            cfg.truncated(keep)  # validates num_layers
            flat = {}
            with safe_open(str(cache / _PARAMS_FILE), framework="numpy") as f:
                for k in f.keys():
                    flat[k] = f.get_slice(k)[:keep] if k.startswith("layers/") else f.get_tensor(k)
        except UserError:
            raise
        except Exception:  # a damaged cache entry: rebuild it
            flat, cfg = None, None
    if flat is None:
        cfg, names, get = gguf_weights.read_gguf(path)
        if num_layers is not None:
            cfg.truncated(num_layers)  # fail before the slow part
        full = hf_to_params(cfg, names, get, np.float32, None, source=path)
        flat = traverse_util.flatten_dict(full, sep="/")
        if cache is not None:
            cfg_full = cfg

            def write(tmp: Path):
                save_file(flat, str(tmp / _PARAMS_FILE), metadata={"format": "pard_jax"})
                (tmp / _CONFIG_FILE).write_text(gguf_weights.config_to_json(cfg_full))

            gguf_weights.atomic_write_dir(cache, write)
        if num_layers is not None:
            flat = {k: (v[:num_layers] if k.startswith("layers/") else v) for k, v in flat.items()}
    if num_layers is not None:
        cfg = cfg.truncated(num_layers)
    np_dtype = np.dtype(dtype)
    params = traverse_util.unflatten_dict({k: jnp.asarray(v.astype(np_dtype, copy=False)) for k, v in flat.items()},
                                          sep="/")
    return LoadedModel(cfg=cfg, params=params, tokenizer_source=path, spec=spec or path)


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_HUB_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "generation_config.json",
              "tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template*"]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_hub(repo_id: str) -> str:
    """A local snapshot of an HF hub repository (the cached one when offline)."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=_hub_offline())
    except Exception as e:  # offline, not found, gated, network: all mean "no local copy for you"
        why = "offline (HF_HUB_OFFLINE is set) and not in the local HF cache" if _hub_offline() \
            else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"cannot get {repo_id!r} from the Hugging Face Hub ({why}); pass a local model directory "
                        "(config.json + model.safetensors) or a .gguf file instead") from e


def load_model(spec: str, dtype=jnp.float32, num_layers: int | None = None, shared_embed=None) -> LoadedModel:
    """Load a model from a local HF dir, a .gguf file, an HF hub id, the alias "smollm2-135m-instruct", or the
    alias "smollm2-135m-pard" (the draft shipped in this repository's drafts/ directory).

    `num_layers` keeps only the first N decoder layers (a cheap draft: same embed, final norm and lm_head).
    `shared_embed` supplies the embedding table of a compact HF-directory draft that ships without one.
    """
    spec = str(spec)
    if spec == SMOLLM2_ALIAS:
        return load_gguf(gguf_weights.smollm2_gguf_path(), dtype, num_layers, spec=spec)
    if spec == SMOLLM2_DRAFT_ALIAS:
        if not os.path.isfile(os.path.join(SMOLLM2_DRAFT_DIR, "config.json")):
            raise UserError(f"the draft {spec!r} is missing from {SMOLLM2_DRAFT_DIR}; restore it from git or "
                            "rebuild it (README: The shipped draft)")
        return load_hf_dir(SMOLLM2_DRAFT_DIR, dtype, num_layers, spec=spec, shared_embed=shared_embed)
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
            raise UserError(f"{spec} is not readable; fix its permissions or pass another path")
        if os.path.isdir(path):
            return load_hf_dir(path, dtype, num_layers, spec=spec, shared_embed=shared_embed)
        if path.lower().endswith(".gguf"):
            return load_gguf(path, dtype, num_layers, spec=spec)
        if os.path.basename(path) == "config.json":
            return load_hf_dir(os.path.dirname(path) or ".", dtype, num_layers, spec=spec)
        raise UserError(f"{spec} is a file but not a .gguf; pass an HF model directory or a .gguf file")
    if _HUB_ID.fullmatch(spec) and not spec.startswith((".", "~")):
        return load_hf_dir(download_hub(spec), dtype, num_layers, spec=spec)
    raise UserError(f"{spec} does not exist; pass an HF model directory, a .gguf file, an HF hub id (org/name) "
                    f"or one of the aliases {SMOLLM2_ALIAS!r}, {SMOLLM2_DRAFT_ALIAS!r}")


# ----------------------------------------------------------------------------------------------- export


def export_hf(params, cfg: ModelConfig, out_dir: str, tokenizer=None, compact: bool = False) -> None:
    """Write model.safetensors + config.json (+ tokenizer files) that transformers loads with the same logits.

    `compact` writes a draft for shipping beside its target: bfloat16 weights and no embedding table (the
    target's is used at load time; requires tied embeddings). transformers cannot load that form.
    """
    from safetensors.numpy import save_file

    tensors = params_to_hf(params, cfg)
    if compact:
        if not cfg.tie_word_embeddings:
            raise UserError("a compact export drops the embedding table, which needs tied embeddings; "
                            "export the full form instead")
        import ml_dtypes

        tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items() if k != "model.embed_tokens.weight"}
    hf_cfg = cfg.to_hf_dict()
    dtypes = {str(a.dtype) for a in tensors.values()}
    if len(dtypes) == 1:
        name = dtypes.pop()
        hf_cfg["torch_dtype"] = name
        hf_cfg["dtype"] = name
    os.makedirs(out_dir, exist_ok=True)
    stale_index = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(stale_index):  # left by an earlier sharded save: it would point readers at stale shards
        os.remove(stale_index)
    tmp = os.path.join(out_dir, ".model.safetensors.tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
