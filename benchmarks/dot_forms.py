"""Why bf16 compute does not speed up the train step on XLA:CPU: the rate of each operand form of the small size's
matmuls, f32 and bf16, and whether XLA hands the dot to YNNPACK in that dtype.

    python benchmarks/dot_forms.py [--repeats 20]

Forms, for activations x [M, K], weight w [K, N], output gradient g [M, N] (M = 8 rows x 192 tokens):
  NN      x @ w        the forward
  NN->lo  x @ w        the forward with the result in the operands' dtype (``x @ w`` on bf16 arrays)
  NT      g @ w.T      the input gradient (contracts the weight's last dimension)
  TN      x.T @ g      the weight gradient (contracts the token dimension of both)
  NT*     g @ T(w)     the input gradient on a materialised transpose (``models.dense.materialized_transpose``)
  TN*     T(x) @ g     the weight gradient on a materialised transpose
Except ``NN->lo``, bf16 runs accumulate in f32 (``preferred_element_type=float32``). The ``dtype at the dot`` column
reads the compiled HLO: ``bf16`` when the dot runs on bf16 operands, ``f32 (upcast)`` when XLA converted them to f32
first. ``models/dense.py`` builds the decoder's bf16 projections from the forms that stay bf16 (NN, NT*, TN*).
Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exit_jax.models.dense import dot_operand_dtypes, materialized_transpose  # noqa: E402

FORMS = ("NN", "NN->lo", "NT", "TN", "NT*", "TN*")

SHAPES = ((1536, 768, 2048), (1536, 2048, 768), (1536, 768, 768))


def _form(name: str):
    f32, t = jnp.float32, materialized_transpose
    return {
        "NN": lambda x, w, g: jnp.dot(x, w, preferred_element_type=f32),
        "NN->lo": lambda x, w, g: x @ w,
        "NT": lambda x, w, g: jnp.dot(g, w.T, preferred_element_type=f32),
        "TN": lambda x, w, g: jnp.dot(x.T, g, preferred_element_type=f32),
        "NT*": lambda x, w, g: jnp.dot(g, t(w), preferred_element_type=f32),
        "TN*": lambda x, w, g: jnp.dot(t(x), g, preferred_element_type=f32),
    }[name]


def _seconds(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def _dot_dtype(fn, args) -> str:
    """The element type of the compiled dot's operands."""
    lhs, _ = dot_operand_dtypes(fn.lower(*args).compile().as_text())[0]
    return "f32 (upcast)" if lhs == "f32" else lhs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    key = jax.random.key(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; min of {args.repeats} calls")
    print("| M x K x N | form | f32 GFLOP/s | bf16 GFLOP/s | bf16 / f32 | dtype at the dot (bf16 run) |")
    print("|---|---|---|---|---|---|")
    for m, k, n in SHAPES:
        for name in FORMS:
            rates, dtype = [], ""
            for dt in (jnp.float32, jnp.bfloat16):
                x = jax.random.normal(key, (m, k)).astype(dt)
                w = jax.random.normal(key, (k, n)).astype(dt)
                g = jax.random.normal(key, (m, n)).astype(dt)
                fn = jax.jit(_form(name))
                rates.append(2 * m * k * n / _seconds(fn, (x, w, g), args.repeats) / 1e9)
                if dt == jnp.bfloat16:
                    dtype = _dot_dtype(fn, (x, w, g))
            print(f"| {m} x {k} x {n} | {name} | {rates[0]:.0f} | {rates[1]:.0f} | {rates[1] / rates[0]:.2f} "
                  f"| {dtype} |", flush=True)


if __name__ == "__main__":
    main()
