"""Measures this machine's limits with JAX in the project's environment; prints one JSON object.

* matmul peak FLOP/s: square f32 x f32 -> f32, and bf16 x bf16 -> f32 accumulation
  (`preferred_element_type=float32`), best of several timed calls after a warm-up;
* memory read bandwidth: a jitted sum over a large f32 array, best of several calls;
* a description: CPU model, cores, memory, load average, JAX backend and devices.

  python benchmarks/peers/machine_probe.py [--matmul-size 2048] [--repetitions 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp


def best_seconds(function, *arguments, repetitions: int) -> float:
    jax.block_until_ready(function(*arguments))  # compile + warm-up
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops_per_s(size: int, input_dtype, repetitions: int) -> float:
    """Best achieved FLOP/s of a [size, size] @ [size, size] product accumulated in f32."""
    keys = jax.random.split(jax.random.key(0))
    left = jax.random.normal(keys[0], (size, size), jnp.float32).astype(input_dtype)
    right = jax.random.normal(keys[1], (size, size), jnp.float32).astype(input_dtype)
    product = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    return 2 * size**3 / best_seconds(product, left, right, repetitions=repetitions)


def read_bandwidth_bytes_per_s(megabytes: int, repetitions: int) -> float:
    """Best achieved read bandwidth of a jitted sum over a `megabytes` f32 array."""
    values = jnp.ones((megabytes * 2**20 // 4,), jnp.float32)
    total = jax.jit(jnp.sum)
    return values.nbytes / best_seconds(total, values, repetitions=repetitions)


def describe_machine() -> dict:
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "memory_bytes": memory_bytes,
        "load_average_1_5_15": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--bandwidth-megabytes", type=int, default=256)
    parser.add_argument("--repetitions", type=int, default=10)
    args = parser.parse_args()
    result = {
        "machine": describe_machine(),
        "matmul_size": args.matmul_size,
        "matmul_f32_flops_per_s": matmul_flops_per_s(
            args.matmul_size, jnp.float32, args.repetitions
        ),
        "matmul_bf16_f32acc_flops_per_s": matmul_flops_per_s(
            args.matmul_size, jnp.bfloat16, args.repetitions
        ),
        "read_bandwidth_bytes_per_s": read_bandwidth_bytes_per_s(
            args.bandwidth_megabytes, args.repetitions
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
