"""pard-jax: PARD (parallel draft) speculative decoding in JAX/Flax."""

import importlib.resources

from pard_jax import libtpu_env

libtpu_env.quiet_without_chips()  # before jax starts a backend

__version__ = "0.1.0"


def asset_path(*parts: str) -> str:
    """The path of package data under pard_jax/assets/ (the default inference config, the shipped draft and its
    target's tokenizer)."""
    return str(importlib.resources.files(__name__).joinpath("assets", *parts))
