"""The training program's typed configuration (YAML via `config_io.load_config`, `a.b=value` overrides)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pard_jax.config_io import load_config
from pard_jax.distributed import DistributedSection
from pard_jax.dtypes import DTYPES
from pard_jax.errors import UserError
from pard_jax.training.cod import validate_pard

BYTE_TOKENIZER = "bytes"  # model.tokenizer value that selects the built-in byte tokenizer


@dataclasses.dataclass
class ModelSection:
    """The initial (AR) model: a SPEC (optionally truncated), or a random init from an inline HF config."""

    spec: str | None = None  # a model SPEC as for generation, e.g. "smollm2-135m-instruct" or an HF directory
    num_layers: int | None = None  # keep only the first N decoder layers of `spec` (a draft cut from a target)
    hf_config: dict[str, Any] | None = None  # an HF config.json as a mapping: random init instead of `spec`
    init_seed: int = 0
    # top-level parameters kept at their initial values, e.g. [embed]: a draft that keeps its target's
    # embedding table can ship without it (`export --compact`) and take the target's at load time
    freeze: list[str] = dataclasses.field(default_factory=list)
    # token ids whose rows of a frozen `embed` still train, e.g. [the mask token id]: the draft learns its mask
    # embedding, and a compact export ships just those rows beside the target's table
    train_embed_rows: list[int] = dataclasses.field(default_factory=list)
    # a sub-vocabulary output layer (FR-Spec) over the N ids most frequent among the data's trained tokens
    # (EOS always included), initialised from the output layer's rows and trained; None: the whole vocabulary
    draft_vocab: int | None = None
    tokenizer: str | None = None  # "bytes" (built-in byte tokenizer) or a tokenizer source; default: the spec's


@dataclasses.dataclass
class PardSection:
    # K in the PARD paper, para_num in its reference code: blocks trained = tokens the draft predicts per pass
    k: int = 8
    r: float = 0.7  # COD keep rate: block j keeps max(r**j, r_min) of the positions; 1 disables COD
    r_min: float = 0.2
    mask_token_id: int | None = None  # the reserved id fed as the mask token; must be < vocab size


@dataclasses.dataclass
class Pard2Section:
    """PARD-2 (arXiv 2605.08632): a draft that can also read the frozen target's hidden states, trained with
    distillation and CAT weights. `target` unset: plain PARD training."""

    target: str | None = None  # the frozen target model SPEC whose features and logits the draft learns from
    target_layers: list[int] = dataclasses.field(default_factory=lambda: [-1, -8, -16, -24])  # transformers' indices
    scale: float = 0.02  # the projected features' scale in the draft's input
    proj_bias: bool = False
    ce_alpha: float = 0.1  # loss = ce_alpha x CE + kd_alpha x KL(target || draft)
    kd_alpha: float = 1.0
    kd_temperature: float = 1.0
    feature_dropout: float = 0.2  # the fraction of sequences trained without features (target_feat_mask)
    cat: bool = True  # weight each token by CAT, the target's probability of reaching it (prev_prob_loss)
    base_length: int | None = None  # real tokens per packed row the target runs on; default row_length // 2
    # Scale target_proj's updates per input feature by (median feature RMS / its RMS) in the batch: Adam then moves
    # every feature's contribution at the same pace whatever its scale (SmolLM2's middle layers each have one
    # dimension ~3000x the typical one). A reparametrisation of the optimizer only: the weights keep their format.
    precondition: bool = False
    # target_proj's learning rate as a multiple of optimizer.learning_rate: the projection starts at zero while a
    # warm-started draft's other weights need small steps (AdamW: the update and its weight decay both scale).
    proj_lr_multiplier: float = 1.0


@dataclasses.dataclass
class DataSection:
    paths: list[str] = dataclasses.field(default_factory=list)  # .jsonl (conversations, pairs or text) or .txt
    chat_template: bool = True  # format conversations with the tokenizer's chat template
    train_on_prompt: bool = False  # also train on user turns (plain text is always fully trained)
    max_length: int = 512  # L: tokens of one sequence before COD (longer ones are cut)
    row_length: int = 2048  # tokens of one packed row (all blocks of several examples)
    pack_window: int = 64  # examples packed together (larger: fuller rows)
    seed: int = 0  # shuffling and COD sampling


@dataclasses.dataclass
class OptimizerSection:
    learning_rate: float = 1e-4  # peak, after warmup
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    final_lr_fraction: float = 0.1  # the decayed learning rate at `train.steps`, as a fraction of the peak
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    clip_norm: float = 1.0  # global gradient norm clipping; 0 disables


@dataclasses.dataclass
class MeshSection:
    """Mesh axis sizes; -1 (at most one) takes the devices left over."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1


@dataclasses.dataclass
class TrainSection:
    steps: int = 1000  # optimizer steps (the learning-rate schedule spans them)
    stop_at: int = 0  # end this run after that step, with a checkpoint (0: at `steps`); the schedule still spans
    # `steps`, so a later run with a later stop_at continues it as one run (e.g. with a setting changed between)
    batch_size: int = 8  # packed rows per optimizer step, all processes together
    grad_accum: int = 1  # micro-batches per step (batch_size / grad_accum rows each)
    compute_dtype: str = "float32"  # float32 | bfloat16 (parameters stay float32)
    remat: bool = False  # recompute layer activations in the backward pass (less memory)
    log_every: int = 10


@dataclasses.dataclass
class CheckpointSection:
    every: int = 500  # save every N steps (and at the last step); 0 disables checkpoints
    keep: int = 3  # keep the last N checkpoints


@dataclasses.dataclass
class TrainConfig:
    run_dir: str = "runs/default"  # checkpoints, metrics.jsonl and the run's config
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    pard: PardSection = dataclasses.field(default_factory=PardSection)
    pard2: Pard2Section = dataclasses.field(default_factory=Pard2Section)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    optimizer: OptimizerSection = dataclasses.field(default_factory=OptimizerSection)
    mesh: MeshSection = dataclasses.field(default_factory=MeshSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    checkpoint: CheckpointSection = dataclasses.field(default_factory=CheckpointSection)
    distributed: DistributedSection = dataclasses.field(default_factory=DistributedSection)


def load_train_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """The config from a YAML file with `a.b=value` overrides, checked (relative paths are from the working dir)."""
    cfg = load_config(TrainConfig, path, list(overrides))
    validate_static(cfg)
    return cfg


def validate_static(cfg: TrainConfig) -> None:
    """Checks that need no model, data or devices."""
    validate_pard(cfg.pard.k, cfg.pard.r, cfg.pard.r_min)
    if (cfg.model.spec is None) == (cfg.model.hf_config is None):
        raise UserError("set exactly one of model.spec (start from a model) and model.hf_config (random init)")
    if cfg.model.hf_config is not None and cfg.model.num_layers is not None:
        raise UserError("model.num_layers applies to model.spec only; set num_hidden_layers in model.hf_config")
    if cfg.model.train_embed_rows and "embed" not in cfg.model.freeze:
        raise UserError("model.train_embed_rows picks rows of a frozen table; add embed to model.freeze, or drop "
                        "train_embed_rows to train the whole table")
    if cfg.model.draft_vocab is not None and cfg.model.draft_vocab < 1:
        raise UserError(f"model.draft_vocab must be a positive number of ids, got {cfg.model.draft_vocab}")
    if cfg.pard.mask_token_id is None:
        raise UserError("set pard.mask_token_id to a reserved token id of the model's vocabulary")
    p2 = cfg.pard2
    if p2.target is not None:
        if not p2.target_layers:
            raise UserError("pard2.target_layers must name at least one target hidden state, e.g. [-1, -8, -16, -24]")
        if not 0.0 <= p2.feature_dropout < 1.0:
            raise UserError(f"pard2.feature_dropout must lie in [0, 1), got {p2.feature_dropout}")
        if not p2.proj_lr_multiplier > 0:
            raise UserError(f"pard2.proj_lr_multiplier must be positive, got {p2.proj_lr_multiplier}")
        if p2.kd_temperature <= 0 or p2.ce_alpha < 0 or p2.kd_alpha < 0 or p2.ce_alpha + p2.kd_alpha == 0:
            raise UserError("pard2.kd_temperature must be positive and ce_alpha, kd_alpha non-negative, not both 0")
        if p2.base_length is not None and not 1 <= p2.base_length <= cfg.data.row_length:
            raise UserError(f"pard2.base_length must lie in 1..data.row_length={cfg.data.row_length}, "
                            f"got {p2.base_length}")
    if not cfg.data.paths:
        raise UserError("set data.paths to one or more .jsonl/.txt training files")
    if cfg.data.max_length < 2:
        raise UserError(f"data.max_length must be at least 2, got {cfg.data.max_length}")
    if cfg.train.compute_dtype not in DTYPES:
        raise UserError(f"train.compute_dtype must be {' or '.join(DTYPES)}, got {cfg.train.compute_dtype!r}")
    if cfg.optimizer.schedule not in ("cosine", "linear", "constant"):
        raise UserError(f"optimizer.schedule must be cosine, linear or constant, got {cfg.optimizer.schedule!r}")
    if cfg.train.steps < 1 or cfg.train.batch_size < 1 or cfg.train.grad_accum < 1:
        raise UserError("train.steps, train.batch_size and train.grad_accum must be positive")
    if not 0 <= cfg.train.stop_at <= cfg.train.steps:
        raise UserError(f"train.stop_at must lie in 0..train.steps={cfg.train.steps} (0: stop at train.steps), "
                        f"got {cfg.train.stop_at}")
    if cfg.train.batch_size % cfg.train.grad_accum:
        raise UserError(f"train.batch_size={cfg.train.batch_size} must be a multiple of "
                        f"train.grad_accum={cfg.train.grad_accum}")
    sizes = [cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor]
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise UserError(f"mesh sizes must be positive, with at most one -1, got data={sizes[0]} "
                        f"fsdp={sizes[1]} tensor={sizes[2]}")

