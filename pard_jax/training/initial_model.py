"""The model a training run starts from: an autoregressive model to adapt (a SPEC, maybe cut to its first layers,
or a random init), its tokenizer, a sub-vocabulary head chosen from the data, and for PARD-2 the frozen target and
the draft's input projection from the target's features."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pard_jax.distill.vocab import coverage, frequent_ids, token_counts
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.models.config import ModelConfig, Pard2, missing_hidden_states
from pard_jax.training import checkpoint
from pard_jax.training.config import BYTE_TOKENIZER, TrainConfig
from pard_jax.training.records import read_records, trained_ids
from pard_jax.weights.sources import load_model
from pard_jax.weights.tokenizer import ByteTokenizer, check_mask_token, load_tokenizer


@dataclasses.dataclass
class TargetModel:
    """PARD-2: the frozen target whose hidden states and logits the draft learns from."""

    cfg: ModelConfig
    host_params: dict  # numpy, full, on the host
    tokenizer_source: str  # the draft shares it (a compact draft ships none)


@dataclasses.dataclass
class InitialModel:
    """The autoregressive model a run starts from, and its tokenizer (and PARD-2's frozen target)."""

    cfg: ModelConfig  # with pard_token set (and pard2 for a PARD-2 draft)
    host_params: dict | None  # loaded weights (numpy, full, on the host), or None for a random init
    tokenizer: Any
    tokenizer_source: str
    target: TargetModel | None = None


def load_target(cfg: TrainConfig) -> TargetModel | None:
    """PARD-2's frozen target (`pard2.target`), or None for plain PARD training."""
    if cfg.pard2.target is None:
        return None
    loaded = load_model(cfg.pard2.target, dtype=dtype_of(cfg.train.compute_dtype))  # frozen: no float32 master
    check_target_layers(cfg, loaded.cfg)
    return TargetModel(loaded.cfg, jax.tree.map(np.asarray, loaded.params), loaded.tokenizer_source)


def check_target_layers(cfg: TrainConfig, target: ModelConfig) -> None:
    n = target.num_layers
    bad = missing_hidden_states(cfg.pard2.target_layers, n)
    if bad:
        raise UserError(f"pard2.target_layers: {bad[0]} is not a hidden state of the {n}-layer target; use "
                        f"-{n + 1}..{n}")


def with_pard2(cfg: TrainConfig, model_cfg: ModelConfig, host_params: dict | None, target: TargetModel):
    """The draft with a PARD-2 input projection from the target's features (`target_proj`). A new projection
    starts at zero, so the draft starts as it was (target-independent)."""
    p2 = cfg.pard2
    if model_cfg.vocab_size != target.cfg.vocab_size and model_cfg.draft_vocab is None:
        raise UserError(f"the draft's vocabulary ({model_cfg.vocab_size}) and pard2.target's "
                        f"({target.cfg.vocab_size}) differ: a PARD-2 draft shares its target's tokenizer")
    want = Pard2(tuple(p2.target_layers), len(p2.target_layers) * target.cfg.hidden_size, p2.scale, p2.proj_bias)
    if model_cfg.pard2 is not None:
        if model_cfg.pard2 != want:
            raise UserError(f"model.spec is a PARD-2 draft of {model_cfg.pard2}, not of the pard2 section's {want}; "
                            "make the pard2 section match it")
        return model_cfg, host_params
    model_cfg = dataclasses.replace(model_cfg, pard2=want)
    if host_params is not None:
        proj = {"kernel": np.zeros((want.target_dim, model_cfg.hidden_size), np.float32)}
        if want.proj_bias:
            proj["bias"] = np.zeros((model_cfg.hidden_size,), np.float32)
        host_params = {**host_params, "target_proj": proj}
    return model_cfg, host_params


def load_initial_model(cfg: TrainConfig) -> InitialModel:
    """The AR model to adapt (a SPEC, maybe truncated, or a random init) and its tokenizer; for PARD-2 the
    frozen target too (a compact draft takes its embedding table)."""
    m = cfg.model
    target = load_target(cfg)
    if m.spec is not None:
        loaded = load_model(m.spec, dtype=jnp.float32, num_layers=m.num_layers,
                            shared_embed=None if target is None else target.host_params["embed"])
        model_cfg, host_params, tok_source = loaded.cfg, loaded.params, loaded.tokenizer_source
    else:
        model_cfg, host_params, tok_source = ModelConfig.from_hf_dict(m.hf_config), None, None
    tok_source = m.tokenizer or (target.tokenizer_source if target is not None else tok_source)
    if tok_source is None:
        raise UserError("set model.tokenizer (\"bytes\" or a tokenizer directory / .gguf) for a random-init model")
    tok = ByteTokenizer() if tok_source == BYTE_TOKENIZER else load_tokenizer(tok_source)
    n_ids = tok.vocab_size if tok_source == BYTE_TOKENIZER else len(tok)
    if n_ids > model_cfg.vocab_size:
        raise UserError(f"the tokenizer has {n_ids} ids but the model's vocabulary has {model_cfg.vocab_size}; "
                        "use the model's own tokenizer")
    check_mask_token(cfg.pard.mask_token_id, model_cfg.vocab_size, tok, name="pard.mask_token_id")
    bad_rows = [i for i in m.train_embed_rows if not 0 <= i < model_cfg.vocab_size]
    if bad_rows:
        raise UserError(f"model.train_embed_rows {bad_rows} lie outside the vocabulary 0..{model_cfg.vocab_size - 1}")
    model_cfg = dataclasses.replace(model_cfg, pard_token=cfg.pard.mask_token_id)
    if m.draft_vocab is not None:
        model_cfg, host_params = with_draft_vocab(cfg, model_cfg, host_params, tok)
    if target is not None:
        model_cfg, host_params = with_pard2(cfg, model_cfg, host_params, target)
    return InitialModel(model_cfg, host_params, tok, tok_source, target)


def with_draft_vocab(cfg: TrainConfig, model_cfg: ModelConfig, host_params: dict | None, tok):
    """The model with a sub-vocabulary head over the `model.draft_vocab` ids most frequent among the training
    data's trained tokens (EOS always in): its `draft_head` starts as those rows of the output layer."""
    if model_cfg.draft_vocab is not None:
        raise UserError("model.draft_vocab: the model already has a sub-vocabulary head; drop the setting")
    d = cfg.data
    counts = token_counts(trained_ids(read_records(d.paths), tok, chat_template=d.chat_template,
                                      train_on_prompt=d.train_on_prompt), model_cfg.vocab_size)
    ids = saved_draft_vocab(cfg.run_dir)  # a resumed run keeps its head's ids, even if the data has grown
    if ids is None:
        eos = [i for i in (*model_cfg.eos_token_ids, getattr(tok, "eos_token_id", None)) if i is not None]
        ids = frequent_ids(counts, min(cfg.model.draft_vocab, model_cfg.vocab_size), always=eos)
    if jax.process_index() == 0:
        print(f"sub-vocabulary head: {len(ids)} ids cover {coverage(counts, ids):.2%} of the trained tokens",
              flush=True)
    model_cfg = dataclasses.replace(model_cfg, draft_vocab=tuple(int(i) for i in ids))
    if host_params is not None:
        rows = host_params["embed"] if "lm_head" not in host_params else host_params["lm_head"].T
        host_params = {k: v for k, v in host_params.items() if k != "lm_head"}
        host_params["draft_head"] = np.ascontiguousarray(rows[ids])
    return model_cfg, host_params


def saved_draft_vocab(run_dir: str) -> np.ndarray | None:
    """The sub-vocabulary ids of the latest checkpoint in `run_dir`, if it has one."""
    if not os.path.isdir(os.path.join(run_dir, checkpoint.CHECKPOINT_SUBDIR)):
        return None
    ckpt = checkpoint.Checkpointer(run_dir, read_only=True)
    step = ckpt.latest_step()
    ids = None if step is None else ckpt.read_meta(step)["model"].get("draft_vocab")
    ckpt.close()
    return None if ids is None else np.asarray(ids, np.int32)
