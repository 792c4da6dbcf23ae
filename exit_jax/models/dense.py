"""Dense projections whose backward keeps bf16 matmuls on XLA:CPU's fast path.

On the CPU backend XLA runs a bf16 dot on bf16 operands (YNNPACK with AMX / AVX512-BF16, 4-7x the f32 rate on the
development machine) only when the dot is in the row-major form ``x @ w``. A dense layer's backward has the other two
forms, ``g @ w.T`` (input gradient) and ``x.T @ g`` (weight gradient), and XLA:CPU compiles both with the operands
converted to f32 (``python benchmarks/dot_forms.py`` reads the converts in the compiled HLO); so is a bf16 dot whose
result is bf16 (``x @ w`` on bf16 arrays), the forward's own form. Writing the transpose out does not help: XLA folds
a transpose into the dot's dimension numbers before it picks the dtype, looks through an optimization barrier, and
hoists a transpose out of a conditional whose branches agree.

``dense(x, w, transposed_backward=True)`` accumulates every product in f32 and rounds it to the compute dtype
afterwards (what the upcast path computes too, up to summation order), and its custom backward hands both backward
dots operands already transposed in memory (``materialized_transpose``), so all three matmuls of the layer are
row-major bf16 products; the weight gradient is returned in f32 (autodiff would round it to bf16 first). On TPU and
GPU every form is native, so ``backward_dots="auto"`` turns this on only for bf16 compute on the CPU backend.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from exit_jax.models.config import BACKWARD_DOTS


def transposed_backward(backward_dots: str, compute_dtype: str) -> bool:
    """Whether ``dense`` should use the materialised-transpose backward (see the module docstring)."""
    if backward_dots not in BACKWARD_DOTS:
        raise ValueError(f"backward_dots must be one of {BACKWARD_DOTS}, got {backward_dots!r}")
    if backward_dots == "auto":
        return jnp.dtype(compute_dtype) == jnp.bfloat16 and jax.default_backend() == "cpu"
    return backward_dots == "transposed"


def materialized_transpose(a: jax.Array) -> jax.Array:
    """``a.T`` for a 2-D array, written out row-major where XLA cannot fold it into the dot that consumes it.

    The transpose runs inside a conditional whose other branch differs (a NaN fill), so XLA can neither hoist it nor
    fold it. The predicate, ``a[0, 0] == a[0, 0]``, is false only when that element is NaN, and then the NaN fill
    keeps the product non-finite, as it would have been anyway.
    """
    return jax.lax.cond(a[0, 0] == a[0, 0], jnp.transpose, lambda t: jnp.full(t.shape[::-1], jnp.nan, t.dtype), a)


def _row_major_dot(a: jax.Array, b: jax.Array, out_dtype) -> jax.Array:
    """``a @ b`` accumulated in f32 (the only output type XLA:CPU's bf16 dot path takes), then cast."""
    return jnp.dot(a, b, preferred_element_type=jnp.float32).astype(out_dtype)


def dot_operand_dtypes(compiled_hlo: str) -> list[tuple[str, str]]:
    """(lhs, rhs) element types of every dot in compiled HLO text (``jit(f).lower(...).compile().as_text()``): how
    to see whether XLA:CPU kept a dot in bf16 (``("bf16", "bf16")``) or upcast it (``("f32", "f32")``)."""
    types = dict(re.findall(r"%([\w.\-]+) = (\w+)\[", compiled_hlo))
    return [(types[a], types[b]) for a, b in re.findall(r" dot\(%([\w.\-]+), %([\w.\-]+)\)", compiled_hlo)]


@jax.custom_vjp
def _dense_transposed(x: jax.Array, w: jax.Array) -> jax.Array:
    return _row_major_dot(x, w.astype(x.dtype), x.dtype)


def _dense_transposed_fwd(x, w):
    return _dense_transposed(x, w), (x, w)


def _dense_transposed_bwd(residuals, g):
    x, w = residuals
    g = g.astype(x.dtype)
    dx = _row_major_dot(g, materialized_transpose(w.astype(x.dtype)), x.dtype)
    dw = _row_major_dot(materialized_transpose(x), g, w.dtype)
    return dx, dw


_dense_transposed.defvjp(_dense_transposed_fwd, _dense_transposed_bwd)


def dense(x: jax.Array, w: jax.Array, transposed_backward: bool = False) -> jax.Array:
    """``x @ w.astype(x.dtype)`` for ``x [rows, in]`` and ``w [in, out]`` (any parameter dtype).

    With ``transposed_backward`` the product accumulates in f32 and the gradients come from row-major dots on
    materialised transposes (the module docstring says why); either way the forward is the same product up to
    summation order.
    """
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(f"dense takes 2-D operands, got {x.shape} @ {w.shape}")
    if transposed_backward:
        return _dense_transposed(x, w)
    return x @ w.astype(x.dtype)
