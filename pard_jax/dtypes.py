"""The one table of compute/parameter dtypes a config may name."""

from __future__ import annotations

import jax.numpy as jnp

from pard_jax.errors import UserError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def dtype_of(name: str):
    """The jnp dtype called `name` in a config ("float32" or "bfloat16")."""
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}") from None
