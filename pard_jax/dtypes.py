"""The one table of compute/parameter dtypes a config may name, and the one dtype policy.

Policy: generation's "auto" is bfloat16 on GPU and TPU (half the bytes per decode step, native on their
matrix units) and float32 on CPU, where bfloat16 products are several times slower (measured on the
project's Xeon and EPYC machines). Training names its compute dtype explicitly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pard_jax.errors import UserError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
AUTO = "auto"


def auto_dtype_name(platform: str | None = None) -> str:
    """The dtype "auto" means on `platform` (default: that of the first device)."""
    platform = platform or jax.devices()[0].platform
    return "float32" if platform == "cpu" else "bfloat16"


def dtype_of(name: str, platform: str | None = None):
    """The jnp dtype called `name` in a config ("float32", "bfloat16", or "auto": the policy above, for `platform`,
    by default that of the first device)."""
    if name == AUTO:
        name = auto_dtype_name(platform)
    try:
        return DTYPES[name]
    except (KeyError, TypeError):
        raise UserError(f"dtype must be one of {', '.join([*DTYPES, AUTO])}, got {name!r}") from None
