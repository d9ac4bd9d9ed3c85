"""The inference programs' typed configuration (YAML via `config_io.load_config`, `key=value` overrides)."""

from __future__ import annotations

import dataclasses

from pard_jax import asset_path
from pard_jax.distributed import DistributedSection
from pard_jax.dtypes import dtype_of
from pard_jax.errors import UserError
from pard_jax.speculative.loop import PREFILL_CHUNK, Mode
from pard_jax.speculative.placement import InferMesh
from pard_jax.speculative.sampling import SamplingParams

MAX_K = 32
# The packaged default: SmolLM2-135M-Instruct decoded with PARD and the shipped draft (pard_jax/assets/).
DEFAULT_CONFIG = asset_path("default.yaml")


@dataclasses.dataclass
class InferConfig:
    target: str = "smollm2-135m-instruct"
    draft: str | None = None
    draft_layers: int | None = None  # keep only the first N layers of the draft (a cheap untrained draft)
    mode: str = "ar"  # ar | sd | pard; held as a `Mode` (a str) once the config is built
    k: int = 8
    mask_token_id: int | None = None  # default: the draft's config.json `pard_token`
    # PARD-2 drafts: td reads the target's hidden states (target-dependent), ti does not; auto: td for a PARD-2 draft
    pard2: str = "auto"
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 1
    chat_template: bool = True
    dtype: str = "auto"  # float32 | bfloat16 | auto: bfloat16 on GPU/TPU, float32 on CPU (pard_jax.dtypes)
    max_cache_len: int | None = None  # longest prompt + new tokens; default: the target's own context
    cache_memory_gb: float = 8.0  # the most KV cache (target and draft) one batch may take
    prefill_chunk: int = PREFILL_CHUNK  # prompt tokens per prefill step: attention memory ~ chunk x context
    stream_every: int = 4  # iterations between screen updates when streaming
    mesh: InferMesh = dataclasses.field(default_factory=InferMesh)
    distributed: DistributedSection = dataclasses.field(default_factory=DistributedSection)  # multi-host runs

    def __post_init__(self):
        self.mode = Mode.parse(self.mode)


def validate(c: InferConfig) -> SamplingParams:
    """Checks that need no model; returns the sampling settings."""
    if c.mode.uses_draft and not c.draft:
        raise UserError(f"mode {c.mode.value!r} needs a draft model; pass --draft SPEC or use --mode ar")
    if c.mode.uses_draft and not 1 <= c.k <= MAX_K:
        raise UserError(f"k must be between 1 and {MAX_K}, got {c.k}")
    if c.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {c.max_new_tokens}")
    if c.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {c.batch_size}")
    if c.max_cache_len is not None and c.max_cache_len < 2:
        raise UserError(f"max_cache_len must be at least 2 (prompt and new tokens), got {c.max_cache_len}")
    if not c.cache_memory_gb > 0:
        raise UserError(f"cache_memory_gb must be positive, got {c.cache_memory_gb}")
    if c.prefill_chunk < 1:
        raise UserError(f"prefill_chunk must be at least 1, got {c.prefill_chunk}")
    if c.pard2 not in ("auto", "td", "ti"):
        raise UserError(f"--pard2 must be auto, td or ti, got {c.pard2!r}")
    dtype_of(c.dtype)
    return SamplingParams(c.temperature, c.top_k, c.top_p)
