"""Which kernels a program is built with: a static choice made for the platform the program is compiled for.

The choice is a value (`Kernels`), made at the edge for the platform a program is compiled for
(`Kernels.for_platform`: in `speculative.assemble.decode_loop`, from the mesh's devices, or from a dry run's
--platform or --topology), and passed down to the model. Nothing under `pard_jax.models` asks the process which backend it has, so a CPU machine compiling
a GPU or TPU program compiles the program that device would run. Why each platform gets what it gets:
docs/kernels.md.
"""

from __future__ import annotations

import dataclasses

from pard_jax.errors import UserError

PLATFORMS = ("cpu", "gpu", "tpu")
# jax calls a CUDA or ROCm device's platform "gpu"; accept the vendor names too.
_ALIASES = {"cuda": "gpu", "rocm": "gpu"}
FEW_ROWS = 64  # products of at most this many rows take the few-row form (`layers.out_major_product`)


@dataclasses.dataclass(frozen=True)
class Kernels:
    """Static kernel switches (hashable: part of a jitted program's static key).

    cache_blocks: attention over a KV cache reads it in blocks up to the batch's newest position
        (`attention.live_attention`, whose loop has a data-dependent trip count), for capacities where that
        pays (`cache_block`); otherwise one masked product over the whole cache.
    few_row_products: products of at most FEW_ROWS rows against a weight stored [out, in] run as w @ x^T
        behind an optimization barrier (`layers.out_major_product`); otherwise as x @ w^T.

    The default is the plain form of both, right on every platform.
    """

    platform: str = "any"
    cache_blocks: bool = False
    few_row_products: bool = False

    @classmethod
    def for_platform(cls, platform: str) -> "Kernels":
        p = _ALIASES.get(platform.lower(), platform.lower())
        if p == "cpu":
            return cls("cpu", cache_blocks=True, few_row_products=True)
        if p in ("gpu", "tpu"):
            return cls(p)
        raise UserError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")

    def cache_block(self, capacity: int) -> int | None:
        """The block size `attention.live_attention` reads a cache of `capacity` positions in, or None for one
        masked product over all of it."""
        if not self.cache_blocks:
            return None
        if 256 <= capacity <= 1024:
            return 64
        return 512 if capacity > 2048 else None

    def few_rows(self, rows: int) -> bool:
        """Whether a product of `rows` rows takes the few-row form."""
        return self.few_row_products and rows <= FEW_ROWS

    def describe(self) -> str:
        attention = "cache read in live blocks" if self.cache_blocks else "whole-cache attention"
        products = f"w @ x^T for <= {FEW_ROWS} rows" if self.few_row_products else "plain products"
        return f"{self.platform} ({attention}, {products})"


PLAIN = Kernels()
