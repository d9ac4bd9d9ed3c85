"""pard-jax: PARD (parallel draft) speculative decoding in JAX/Flax.

The Python API (README, "Python API"): `load` a target and draft, `generate` for a batch of prompts (text or token
ids), `stream` one prompt; `Generator` and `DecodeLoop` for params you hold; the four steps of one iteration
(`draft`, `verify`, `accept_greedy` / `accept_sampling`, `commit`) for your own loop. They are imported on first
use, so `import pard_jax` stays light (it does not import JAX).
"""

import importlib
import importlib.resources

from pard_jax import libtpu_env

libtpu_env.quiet_without_chips()  # before jax starts a backend

__version__ = "0.1.0"

# Each exported name and the module that holds it.
_EXPORTS = {
    **dict.fromkeys(["load", "generate", "stream", "encode", "Completion"], "pard_jax.api"),
    "InferConfig": "pard_jax.speculative.config",
    "Pipeline": "pard_jax.speculative.setup",
    **dict.fromkeys(["Generator", "Result"], "pard_jax.speculative.generator"),
    **dict.fromkeys(["DecodeLoop", "Mode"], "pard_jax.speculative.loop"),
    "SamplingParams": "pard_jax.speculative.sampling",
    **dict.fromkeys(["draft", "verify", "accept_greedy", "accept_sampling", "commit"], "pard_jax.speculative.steps"),
    "UserError": "pard_jax.errors",
}
__all__ = ["asset_path", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})


def asset_path(*parts: str) -> str:
    """The path of package data under pard_jax/assets/ (the default inference config, the shipped draft and its
    target's tokenizer)."""
    return str(importlib.resources.files(__name__).joinpath("assets", *parts))
