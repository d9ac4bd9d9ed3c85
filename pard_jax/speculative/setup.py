"""From an InferConfig to a ready Generator: load target (and draft), check they fit together, place them."""

from __future__ import annotations

import dataclasses

import jax

from pard_jax.console import log
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.speculative import placement
from pard_jax.speculative.assemble import decode_loop
from pard_jax.speculative.config import InferConfig, validate
from pard_jax.speculative.generator import Generator
from pard_jax.weights.sources import model_shape
from pard_jax.weights.stream import stream_model
from pard_jax.weights.tokenizer import load_tokenizer


def eos_ids_of(cfg, tokenizer) -> tuple[int, ...]:
    """The ids that end generation: the model config's EOS ids and the tokenizer's."""
    ids = set(cfg.eos_token_ids)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return tuple(sorted(ids))


@dataclasses.dataclass
class Pipeline:
    """What the inference programs work with: the generator, the target's tokenizer and the config."""

    generator: Generator
    tokenizer: object
    config: InferConfig


def load(spec: str, dtype, mesh, rules, num_layers: int | None = None, shared_embed=None):
    """A model's params streamed from disk straight into each device's shard (`weights.stream`); a compact
    draft's embedding table is read from `shared_embed`, its target's."""
    if mesh is not None:
        sharding_of = placement.sharding_of(mesh, rules)
        if shared_embed is not None and not shared_embed.is_fully_addressable:  # other hosts hold some rows
            shared_embed = placement.gather(shared_embed, mesh)
    else:
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        sharding_of = lambda path, shape: one  # noqa: E731
    return stream_model(spec, dtype, sharding_of, num_layers, shared_embed)


def check_split_early(spec: str, num_layers: int | None, degree: int, who: str, key: str) -> None:
    """Refuse a tensor degree that cannot split the model before any weight is read, where its shape is known
    without loading (`sources.model_shape`); otherwise `build` checks it after loading."""
    if degree == 1:
        return
    try:
        cfg = model_shape(spec, num_layers)
    except UserError:
        return
    placement.check_split(cfg, degree, who, key)


def build(c: InferConfig) -> Pipeline:
    """Load target (and draft), check they fit together, and build a Generator."""
    validate(c)
    mesh = placement.make_mesh(c.mesh)
    platform = (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform
    dtype = dtype_of(c.dtype, platform)
    check_split_early(c.target, None, c.mesh.tensor, "target", "mesh.tensor")
    if c.mode.uses_draft:
        check_split_early(c.draft, c.draft_layers, c.mesh.draft_tensor, "draft", "mesh.draft_tensor")
    log(f"loading target {c.target} ...")
    target = load(c.target, dtype, mesh, placement.TARGET_RULES)
    tokenizer = load_tokenizer(target.tokenizer_source)
    placement.check_split(target.cfg, c.mesh.tensor, "target", "mesh.tensor")
    draft = None
    if c.mode.uses_draft:
        log(f"loading draft {c.draft}" + (f" (first {c.draft_layers} layers)" if c.draft_layers else "") + " ...")
        draft = load(c.draft, dtype, mesh, placement.DRAFT_RULES, c.draft_layers, target.params["embed"])
        placement.check_split(draft.cfg, c.mesh.draft_tensor, "draft", "mesh.draft_tensor")
    loop = decode_loop(c, target.cfg, draft.cfg if draft else None, eos_ids=eos_ids_of(target.cfg, tokenizer),
                       tokenizer=tokenizer, platform=platform)
    gen = Generator(loop, target.params, draft.params if draft else None, batch_size=c.batch_size,
                    max_cache_len=c.max_cache_len,
                    cache_memory_gb=c.cache_memory_gb, mesh=mesh)
    return Pipeline(gen, tokenizer, c)
