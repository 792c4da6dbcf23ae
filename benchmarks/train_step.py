"""GRPO train-step throughput: step time and achieved FLOP/s next to the machine's measured matmul peak.

Usage (from the repository root):

    python benchmarks/train_step.py                       # embedded (~4M) and ~100M configs, defaults per backend
    python benchmarks/train_step.py --models embedded --batch 32 --seq 256 --steps 5

FLOPs per step = 6 * N_matmul * tokens (forward + backward of every weight matmul, the LM head included, the
embedding gather excluded) + 12 * layers * batch * seq^2 * heads * head_dim (QK^T and AV, forward + backward, the
full square as computed by the dense attention). The peak is a jitted square matmul, timed in the same run, in f32
and bf16. The step is the real one (``exit_jax.rl.train_step``): micro-batch scan, loss, AdamW, clipping; beta = 0
and mu = 1, so no reference or old-log-prob forward is counted or run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exit_jax.models.config import ModelConfig  # noqa: E402
from exit_jax.models.decoder import Decoder  # noqa: E402
from exit_jax.models.embedded import embedded_config  # noqa: E402
from exit_jax.rl import config as config_lib  # noqa: E402
from exit_jax.rl import train_step as step_lib  # noqa: E402


def model_configs() -> dict[str, ModelConfig]:
    return {
        "embedded": embedded_config(),
        # ~100M: GPT-2-small-like widths, Llama layout, 32k vocabulary, tied embeddings.
        "100m": ModelConfig(vocab_size=32000, hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4,
                            intermediate_size=2048, max_position_embeddings=2048, tie_word_embeddings=True),
    }


def matmul_peak(dtype: str, size: int, repeats: int = 5) -> float:
    """Best FLOP/s of a jitted [size, size] @ [size, size] matmul."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32).astype(dtype)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def step_flops(config: ModelConfig, batch: int, seq: int) -> tuple[float, int]:
    n_matmul = config.num_params - (0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size)
    attention = 12 * config.num_layers * batch * seq**2 * config.num_heads * config.head_dim
    return 6.0 * n_matmul * batch * seq + attention, n_matmul


def random_batch(vocab: int, batch: int, seq: int, prompt: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    loss_mask = np.zeros((batch, seq), bool)
    loss_mask[:, prompt:] = True
    return {
        "tokens": jnp.asarray(rng.integers(0, vocab, (batch, seq)), jnp.int32),
        "positions": jnp.asarray(np.broadcast_to(np.arange(seq), (batch, seq)), jnp.int32),
        "attention_mask": jnp.ones((batch, seq), bool),
        "loss_mask": jnp.asarray(loss_mask),
        "advantages": jnp.asarray(rng.normal(size=batch), jnp.float32),
    }


def time_train_step(model_config: ModelConfig, batch: int, seq: int, micro: int, steps: int) -> dict[str, float]:
    config = config_lib.get_config()
    config.batch_size, config.num_generations, config.micro_batch_size = batch, 2 if batch % 2 == 0 else batch, micro
    config.loss_type, config.learning_rate, config.max_completion_length = "dapo", 1e-5, seq
    config_lib.validate_config(config)
    graphdef, params, rest = nnx.split(Decoder(model_config, rngs=nnx.Rngs(0)), nnx.Param, ...)
    optimizer = step_lib.make_optimizer(config)
    opt_state = jax.jit(optimizer.init)(params)
    step = step_lib.make_train_step(graphdef, config, optimizer, num_microbatches=batch // micro)
    data = random_batch(model_config.vocab_size, batch, seq, prompt=seq // 4)
    start = time.perf_counter()
    params, opt_state, metrics = step(params, opt_state, rest, data)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        params, opt_state, metrics = step(params, opt_state, rest, data)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    flops, n_matmul = step_flops(model_config, batch, seq)
    step_s = float(np.median(times))
    return {"params": model_config.num_params, "n_matmul": n_matmul, "compile_s": compile_s, "step_s": step_s,
            "flops": flops, "flop_s": flops / step_s, "tokens_s": batch * seq / step_s}


def main() -> None:
    backend = jax.default_backend()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="embedded,100m")
    parser.add_argument("--batch", type=int, default=8 if backend == "cpu" else 64)
    parser.add_argument("--seq", type=int, default=128 if backend == "cpu" else 512)
    parser.add_argument("--micro", type=int, default=0, help="micro-batch size (0: whole batch)")
    parser.add_argument("--steps", type=int, default=3 if backend == "cpu" else 10)
    parser.add_argument("--matmul-size", type=int, default=2048 if backend == "cpu" else 8192)
    args = parser.parse_args()
    micro = args.micro or args.batch
    device = jax.devices()[0]
    print(f"backend {backend}, device {device.device_kind}, {jax.device_count()} device(s), jax {jax.__version__}")
    peaks = {dtype: matmul_peak(dtype, args.matmul_size) for dtype in ("float32", "bfloat16")}
    for dtype, peak in peaks.items():
        print(f"matmul peak {dtype:>8} ({args.matmul_size}^3): {peak / 1e9:10.1f} GFLOP/s")
    print(f"train step: batch {args.batch} x seq {args.seq}, micro-batch {micro}, f32 params and compute, "
          f"median of {args.steps} steps")
    print(f"{'model':>9} {'params':>10} {'compile s':>10} {'step s':>9} {'tokens/s':>10} {'GFLOP/s':>9} "
          f"{'% f32 peak':>10} {'% bf16 peak':>11}")
    configs = model_configs()
    for name in args.models.split(","):
        r = time_train_step(configs[name], args.batch, args.seq, micro, args.steps)
        print(f"{name:>9} {r['params'] / 1e6:9.1f}M {r['compile_s']:10.1f} {r['step_s']:9.3f} "
              f"{r['tokens_s']:10.0f} {r['flop_s'] / 1e9:9.1f} {100 * r['flop_s'] / peaks['float32']:9.1f}% "
              f"{100 * r['flop_s'] / peaks['bfloat16']:10.1f}%", flush=True)


if __name__ == "__main__":
    main()
