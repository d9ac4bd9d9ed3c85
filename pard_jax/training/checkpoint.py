"""Training checkpoints: params, optimizer state, step and the grain iterator saved together (orbax).

A step's directory is written under a temporary name and renamed when complete, and the manager lists
only complete ones, so a run killed while saving resumes from the last complete checkpoint. Each
checkpoint also holds `meta` (the model's HF config and PARD settings), read to refuse resuming a run
directory that holds a different model, and by `training.export`.
"""

from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp

from pard_jax.errors import UserError

CHECKPOINT_SUBDIR = "checkpoints"
# The fields that fix parameter shapes; the rest of the HF config may change between runs.
SHAPE_KEYS = ("architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
              "num_attention_heads", "num_key_value_heads", "head_dim", "tie_word_embeddings", "attention_bias",
              "mlp_bias")


class Checkpointer:
    """CheckpointManager for one run directory: items params, opt_state, data (grain iterator), meta (JSON)."""

    def __init__(self, run_dir: str, *, every: int = 0, keep: int = 3, read_only: bool = False):
        self.directory = os.path.abspath(os.path.join(run_dir, CHECKPOINT_SUBDIR))
        if read_only and not os.path.isdir(self.directory):
            raise UserError(f"{run_dir!r} holds no checkpoints; pass the run_dir of a training run")
        if read_only:
            options = ocp.CheckpointManagerOptions(save_interval_steps=0, max_to_keep=None, create=False,
                                                   read_only=True)
        else:
            options = ocp.CheckpointManagerOptions(save_interval_steps=max(every, 1), max_to_keep=keep)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("params", "opt_state", "data", "meta"))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step (partly written ones are never listed)."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, params, opt_state, data_iter: grain.DatasetIterator | None, meta: dict,
             *, force: bool = False) -> bool:
        """Save if `step` is due (every N steps) or `force`; returns whether it saved. Writes finish in the background."""
        items = {"params": ocp.args.StandardSave(params), "opt_state": ocp.args.StandardSave(opt_state),
                 "meta": ocp.args.JsonSave(meta)}
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def read_meta(self, step: int) -> dict:
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, abstract_params, abstract_opt_state, data_iter: grain.DatasetIterator | None):
        """(params, opt_state) of `step`, placed with the shardings of the abstract trees; `data_iter` is
        set to its saved state in place."""
        items = {"params": ocp.args.StandardRestore(abstract_params),
                 "opt_state": ocp.args.StandardRestore(abstract_opt_state)}
        if data_iter is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        out = self.manager.restore(step, args=ocp.args.Composite(**items))
        return out["params"], out["opt_state"]

    def restore_params(self, step: int, abstract_params):
        """Only the params of `step`; leaves of `abstract_params` without a sharding go to the first device."""
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract_params = jax.tree.map(
            lambda a: a if getattr(a, "sharding", None) is not None
            else jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract_params)
        return self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract_params)))["params"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def check_same_model(saved_meta: dict, model_hf: dict, run_dir: str) -> None:
    """Refuse to resume a run directory whose checkpoint holds a model of another shape."""
    saved = saved_meta.get("model", {})
    diff = [k for k in SHAPE_KEYS if saved.get(k) != model_hf.get(k)]
    if diff:
        k = diff[0]
        raise UserError(f"run_dir {run_dir!r} holds a checkpoint of a different model ({k} {saved.get(k)!r} there, "
                        f"{model_hf.get(k)!r} now); choose a new run_dir or remove the old one")


def abstract_like(tree, shardings):
    """ShapeDtypeStructs with shardings: the restore target for `tree`'s shapes and dtypes."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
