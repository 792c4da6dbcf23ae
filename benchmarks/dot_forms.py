"""Why bf16 compute does not speed up the train step on XLA:CPU: the rate of each operand form of the small size's
matmuls, f32 and bf16, and whether XLA hands the dot to YNNPACK in that dtype.

    python benchmarks/dot_forms.py [--repeats 20]

Forms, for activations x [M, K], weight w [K, N], output gradient g [M, N] (M = 8 rows x 192 tokens):
  NN  x @ w        the forward
  NT  g @ w.T      the input gradient (contracts the weight's last dimension)
  TN  x.T @ g      the weight gradient (contracts the token dimension of both)
bf16 runs with f32 accumulation (``preferred_element_type=float32``), as the decoder's bf16 compute does. The
``dtype at the dot`` column reads the compiled HLO: ``bf16`` when the dot runs on bf16 operands, ``f32 (upcast)``
when XLA converted the operands to f32 first. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = ((1536, 768, 2048), (1536, 2048, 768), (1536, 768, 768))


def _form(name: str):
    f32 = jnp.float32
    if name == "NN":
        return lambda x, w, g: jnp.dot(x, w, preferred_element_type=f32)
    if name == "NT":
        return lambda x, w, g: jnp.dot(g, w.T, preferred_element_type=f32)
    return lambda x, w, g: jnp.dot(x.T, g, preferred_element_type=f32)


def _seconds(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def _dot_dtype(fn, args) -> str:
    hlo = fn.lower(*args).compile().as_text()
    upcast = re.search(r"= f32\[[0-9,]+\]\{[0-9,]+\} convert\(", hlo) is not None
    return "f32 (upcast)" if upcast else str(jnp.dtype(args[0].dtype))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    key = jax.random.key(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; min of {args.repeats} calls")
    print("| M x K x N | form | f32 GFLOP/s | bf16 GFLOP/s | bf16 / f32 | dtype at the dot (bf16 run) |")
    print("|---|---|---|---|---|---|")
    for m, k, n in SHAPES:
        for name in ("NN", "NT", "TN"):
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
