"""The decoder's building blocks other than attention: RMSNorm, dense projections in either orientation, the MLP."""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from pard_jax.models.config import ModelConfig
from pard_jax.models.kernels import PLAIN, Kernels

Dtype = Any
init = nn.initializers.normal(stddev=0.02)


def kernel_init(axes):
    return nn.with_logical_partitioning(init, axes)


class RMSNorm(nn.Module):
    eps: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)), (x.shape[-1],))
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (scale * xf.astype(self.dtype)).astype(self.dtype)


def out_major_product(x: jax.Array, w: jax.Array, kernels: Kernels = PLAIN, preferred_element_type=None) -> jax.Array:
    """x [..., in] times a weight stored [out, in] -> [..., out].

    With `kernels.few_row_products` (CPU) a product of a few rows (a decode step, a verify call) runs as
    w @ x^T, the weight as the left operand and the output [out, rows]: much faster there than x @ w^T
    (docs/kernels.md). The barrier keeps XLA from folding the small transpose back into the product (which
    restores the slow form). Larger products, and other kernels, take the plain form.
    """
    rows = math.prod(x.shape[:-1])
    if not kernels.few_rows(rows):
        return jnp.einsum("...i,oi->...o", x, w, preferred_element_type=preferred_element_type)
    y = jnp.einsum("oi,ni->on", w, x.reshape(rows, x.shape[-1]), preferred_element_type=preferred_element_type)
    return jax.lax.optimization_barrier(y).T.reshape(*x.shape[:-1], w.shape[0])


class OutMajorDense(nn.Module):
    """nn.Dense with its kernel stored [out, in] (the decoding layout): the same params, "kernel" transposed."""

    features: int
    axes: tuple[str, str]  # logical axes (in, out), as nn.Dense's kernel
    use_bias: bool
    dtype: Dtype
    kernels: Kernels = PLAIN

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", kernel_init(self.axes[::-1]), (self.features, x.shape[-1]))
        y = out_major_product(x.astype(self.dtype), kernel.astype(self.dtype), self.kernels)
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.axes[-1:]),
                              (self.features,))
            y = y + bias.astype(self.dtype)
        return y


def dense(features, axes, use_bias, *, dtype, name, out_major: bool, kernels: Kernels = PLAIN):
    """A projection with logical axes (in, out): stored [in, out] (nn.Dense), or [out, in] with `out_major`."""
    if out_major:
        return OutMajorDense(features, axes, use_bias, dtype, kernels, name=name)
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=kernel_init(axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[-1:]), name=name)


class MLP(nn.Module):
    cfg: ModelConfig
    dtype: Dtype
    out_major: bool = False
    kernels: Kernels = PLAIN

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        proj = functools.partial(dense, dtype=self.dtype, out_major=self.out_major, kernels=self.kernels)
        gate = proj(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, name="gate_proj")(x)
        up = proj(cfg.intermediate_size, ("embed", "mlp"), cfg.mlp_bias, name="up_proj")(x)
        h = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "act_mlp"))
        return proj(cfg.hidden_size, ("mlp", "embed"), cfg.mlp_bias, name="down_proj")(h)
