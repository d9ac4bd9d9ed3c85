"""The decoder's typed configuration, read from and written as an HF `config.json` mapping.

`ModelConfig.from_hf_dict(cfg.to_hf_dict()) == cfg` for every config: that dict is the one serialised form
(exported directories, checkpoint metadata, the GGUF params cache).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pard_jax.errors import UserError

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
_MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
# Layout switches that HF config.json keys cannot always express (e.g. a Llama GGUF with q/k/v biases but no
# o bias). `to_hf_dict` writes them under these names only when the standard keys would imply other values.
_EXPLICIT = ("qkv_bias", "o_bias", "mlp_bias", "qk_norm")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama-3.1 style ('llama3') frequency scaling."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


def missing_hidden_states(layers, num_layers: int) -> list[int]:
    """The indices of `layers` that name no hidden state of a `num_layers`-layer model (transformers' tuple of
    num_layers + 1: -(num_layers + 1) .. num_layers)."""
    return [i for i in layers if not -(num_layers + 1) <= i <= num_layers]


@dataclasses.dataclass(frozen=True)
class Pard2:
    """A PARD-2 draft's target-dependent input (arXiv 2605.08632): the embedding of the token at position j plus
    `scale * target_proj(f_{j-1})`, with f_i the concatenation of the target's hidden states at position i
    from `target_layers` (indices into transformers' hidden-states tuple: embeddings, out of layer 1, ...,
    out of layer N-1, final_norm(out of layer N)); f_{-1} = 0; mask tokens repeat the last real token's."""

    target_layers: tuple[int, ...]
    target_dim: int  # len(target_layers) x the target's hidden size
    scale: float = 0.02
    proj_bias: bool = False

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "Pard2 | None":
        if not (d.get("spd_type") == "pard2" or d.get("pard2")):
            return None
        layers = d.get("pard2_target_layers", d.get("target_layers"))
        if not layers:
            raise UserError("a PARD-2 draft's config.json needs pard2_target_layers (the target layers whose hidden "
                            "states it reads); add it as the draft was trained, e.g. [-1, -8, -16, -24]")
        dim = d.get("pard2_target_dim", d.get("pard_target_dim"))
        if dim is None:
            raise UserError("a PARD-2 draft's config.json needs pard2_target_dim (its target_proj's input size)")
        scale = d.get("pard2_scale", d.get("feat_scale", d.get("pard_scale", 0.02)))
        return cls(tuple(int(i) for i in layers), int(dim), float(scale),
                   bool(d.get("pard2_proj_bias", d.get("proj_bias", False))))

    def to_hf_dict(self) -> dict[str, Any]:
        return {"spd_type": "pard2", "pard2": True, "pard2_target_layers": list(self.target_layers),
                "pard2_target_dim": self.target_dim, "pard2_scale": self.scale, "pard2_proj_bias": self.proj_bias}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One decoder covers Llama, Qwen2 and Qwen3 through these fields (hashable: usable as a jit static)."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3: per-head RMSNorm on q and k
    max_position_embeddings: int = 4096
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pard_token: int | None = None  # the draft's mask token id, when it is a PARD draft
    # A draft whose output layer covers only these target ids (a sub-vocabulary, FR-Spec): its logits are
    # [..., len(draft_vocab)] over them, computed with the `draft_head` parameter. None: the whole vocabulary.
    draft_vocab: tuple[int, ...] | None = None
    pard2: Pard2 | None = None  # a PARD-2 draft: it can read the target's hidden states

    @property
    def model_type(self) -> str:
        return {v: k for k, v in _MODEL_TYPES.items()}[self.architecture]

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        arch = (d.get("architectures") or [None])[0] or _MODEL_TYPES.get(d.get("model_type", ""))
        if arch not in SUPPORTED_ARCHITECTURES:
            raise UserError(
                f"unsupported architecture {arch!r} (model_type {d.get('model_type')!r}); "
                f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        num_heads = d["num_attention_heads"]
        rope = d.get("rope_scaling") or d.get("rope_parameters") or None
        scaling = None
        if rope and (rope.get("rope_type") or rope.get("type")) == "llama3":
            scaling = RopeScaling(
                factor=float(rope["factor"]),
                low_freq_factor=float(rope["low_freq_factor"]),
                high_freq_factor=float(rope["high_freq_factor"]),
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
            )
        elif rope and (rope.get("rope_type") or rope.get("type")) not in (None, "default"):
            raise UserError(f"unsupported rope_scaling type {rope.get('rope_type') or rope.get('type')!r}; "
                            "supported: none, 'default', 'llama3'")
        theta = d.get("rope_theta") or (rope or {}).get("rope_theta") or 10000.0
        eos = d.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
        implied = _implied_layout(arch, d)
        explicit = {k: bool(d[k]) for k in _EXPLICIT if k in d}
        return cls(
            architecture=arch,
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            intermediate_size=d["intermediate_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=num_heads,
            num_kv_heads=d.get("num_key_value_heads") or num_heads,
            head_dim=d.get("head_dim") or d["hidden_size"] // num_heads,
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            rope_scaling=scaling,
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            max_position_embeddings=int(d.get("max_position_embeddings", 4096)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_ids=eos_ids,
            pard_token=d.get("pard_token"),
            draft_vocab=_draft_vocab(d.get("draft_vocab"), d["vocab_size"]),
            pard2=Pard2.from_hf_dict(d),
            **{**implied, **explicit},
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """The HF config.json that transformers loads for these weights."""
        d: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
        }
        if self.architecture == "LlamaForCausalLM":
            d["attention_bias"] = self.qkv_bias
            d["mlp_bias"] = self.mlp_bias
        if self.rope_scaling is not None:
            d["rope_scaling"] = {"rope_type": "llama3", **dataclasses.asdict(self.rope_scaling)}
        if self.bos_token_id is not None:
            d["bos_token_id"] = self.bos_token_id
        if self.eos_token_ids:
            d["eos_token_id"] = list(self.eos_token_ids) if len(self.eos_token_ids) > 1 else self.eos_token_ids[0]
        if self.pard_token is not None:
            d["pard_token"] = self.pard_token
            d["spd_type"] = "pard"
        if self.draft_vocab is not None:
            d["draft_vocab"] = list(self.draft_vocab)
        if self.pard2 is not None:
            d.update(self.pard2.to_hf_dict())
        implied = _implied_layout(self.architecture, d)
        for k in _EXPLICIT:
            if getattr(self, k) != implied[k]:
                d[k] = getattr(self, k)
        return d

    def truncated(self, num_layers: int) -> "ModelConfig":
        """The same model with only its first `num_layers` decoder layers (a cheap draft)."""
        if not 1 <= num_layers <= self.num_layers:
            raise UserError(f"cannot keep {num_layers} layers of a {self.num_layers}-layer model; "
                            f"choose 1..{self.num_layers}")
        return dataclasses.replace(self, num_layers=num_layers)


def _draft_vocab(ids, vocab_size: int) -> tuple[int, ...] | None:
    if ids is None:
        return None
    ids = tuple(int(i) for i in ids)
    if not ids or list(ids) != sorted(set(ids)) or not 0 <= ids[0] <= ids[-1] < vocab_size:
        raise UserError(f"config.json's draft_vocab must be increasing distinct ids in 0..{vocab_size - 1}; "
                        "rewrite it with train/choose_draft_vocab.py")
    return ids


def _implied_layout(arch: str, d: dict[str, Any]) -> dict[str, bool]:
    """The bias and q/k-norm switches that an HF config of `arch` implies through its standard keys."""
    attention_bias = bool(d.get("attention_bias", False))
    return {"qkv_bias": arch == "Qwen2ForCausalLM" or attention_bias, "o_bias": attention_bias,
            "mlp_bias": bool(d.get("mlp_bias", False)), "qk_norm": arch == "Qwen3ForCausalLM"}
