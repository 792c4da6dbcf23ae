"""exit_jax's side of the peer benchmark (benchmarks/peers/README.md): same workload, same JSON schema.

    python benchmarks/exit_jax_bench.py --size tiny [--warmup 1] [--repetitions 3] [--compute_dtype float32]
                                        [--micro_batch_size N] [--cpu_devices N]

Loads the workload's Qwen2 checkpoint with exit_jax's HF loader (checked against HF's reference logits), then measures
(a) rollout: 8 prompts x G = 8 with one shared prefill per prompt, exactly 128 new tokens, temperature 1;
(b) one GRPO train step (forward, backward, AdamW) on that batch; (c) one full iteration: rollout + toy reward +
advantages + update; (d) peak resident memory. Prints one JSON object as the last line of stdout.

``--cpu_devices N`` (default: ``CPU_DEVICES`` of the size) splits the host's cores into N XLA CPU devices
(``--xla_force_host_platform_device_count``) and runs sampler and learner data-parallel over a (data = N) mesh: each
device takes 1/N of the rows on its own thread, instead of one device spreading every small product over all cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

# XLA CPU devices the host's cores are split into (data-parallel over a (data = N) mesh). At the tiny size one device
# runs the decode step's small products at a fraction of the cores' rate (2 cores gave ~1.2x over one); two devices
# of one core each, 32 rows apiece, decode ~1.3-1.4x faster with the same tokens (measured 2026-12-06, session 14:
# docs/benchmarks.md). At the small size the split is slower (rollout 659 vs 730 tokens/s, train step 36 vs 25.5 s).
CPU_DEVICES = {"tiny": 2, "small": 1}


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _cpu_devices(argv: list[str]) -> int:
    """``--cpu_devices`` (default: CPU_DEVICES of ``--size``), read before jax is imported: XLA reads its flags once,
    when the backend starts."""
    given = _flag(argv, "--cpu_devices")
    return int(given) if given is not None else CPU_DEVICES.get(_flag(argv, "--size") or "tiny", 1)


if __name__ == "__main__" and (_requested := _cpu_devices(sys.argv)) > 1:  # not when imported (profile_ops.py)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={_requested}").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import measure  # noqa: E402
import numpy as np  # noqa: E402
import workload  # noqa: E402

from exit_jax.models.hf_io import load_hf_model  # noqa: E402
from exit_jax.rl.batch import completion_batch  # noqa: E402
from exit_jax.rl.config import get_config as rl_config  # noqa: E402
from exit_jax.rl.learner import GRPOLearner  # noqa: E402
from exit_jax.sampling import Sampler, SamplingConfig  # noqa: E402
from exit_jax.sharding import make_mesh  # noqa: E402

# Rows per forward / backward pass (gradients accumulated, still one optimiser step per batch). At the small size a
# full-batch run's process grew to 16 GiB (seen 2026-11-22 with ps; by estimate the activations saved for the
# backward of 64 rows x 192 columns x 12 layers in f32), far over issue 8's 4 GiB; passes of 8 rows cut them 8-fold.
MICRO_BATCH_SIZE = {"tiny": None, "small": 8}


def make_learner(model, compute_dtype: str, micro_batch_size: int | None = None, mesh=None):
    config = rl_config()
    config.batch_size = workload.NUM_PROMPTS * workload.GROUP_SIZE
    config.micro_batch_size = micro_batch_size
    config.num_generations = workload.GROUP_SIZE
    config.learning_rate = workload.LEARNING_RATE
    config.adam_b1, config.adam_b2, config.adam_eps = workload.ADAM_B1, workload.ADAM_B2, workload.ADAM_EPS
    config.weight_decay = workload.WEIGHT_DECAY
    config.max_grad_norm = None
    config.beta = workload.KL_BETA
    config.epsilon = workload.CLIP_EPSILON
    config.compute_entropy = False
    return GRPOLearner(model, config, mesh=mesh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workload.SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--micro_batch_size", type=int, default=None,
                        help="rows per forward/backward pass (default: MICRO_BATCH_SIZE of the size)")
    parser.add_argument("--cpu_devices", type=int, default=None,
                        help="XLA CPU devices to split the cores into, > 1 runs data-parallel over them "
                             "(default: CPU_DEVICES of the size)")
    args = parser.parse_args()
    micro = args.micro_batch_size or MICRO_BATCH_SIZE[args.size]
    if args.cpu_devices is None:
        args.cpu_devices = CPU_DEVICES[args.size]
    if jax.device_count() != args.cpu_devices:  # the flag set before jax's import took effect
        raise SystemExit(f"--cpu_devices {args.cpu_devices}: jax sees {jax.device_count()} devices "
                         f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")
    real_stdout = sys.stdout
    phases = measure.PhasePeaks()
    sampling = SamplingConfig(max_new_tokens=workload.NEW_TOKENS, num_samples=workload.GROUP_SIZE,
                              temperature=workload.TEMPERATURE, prompt_bucket=workload.PROMPT_TOKENS)
    notes = [f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores; "
             f"f32 parameters, {args.compute_dtype} compute"
             + (f"; {args.cpu_devices} XLA CPU devices, rows data-parallel over them" if args.cpu_devices > 1 else
                "; one XLA CPU device"),
             "rollout: one prefill per prompt, "
             + ("its KV cache kept once and read by the prompt's G rows" if sampling.share_prompt_cache
                else "KV cache repeated G times") + ", jitted while-loop decode; "
             "stop tokens disabled so every row decodes exactly 128 tokens",
             "train step: GRPOLearner.update (one jitted step: forward, backward, AdamW) on the 64-row batch"
             + (f", gradients accumulated over passes of {micro} rows" if micro else "")]
    with contextlib.redirect_stdout(sys.stderr), measure.RssSampler() as sampler:
        directory = workload.checkpoint_dir(args.size)
        prompts, prompt_texts = workload.load_prompts(args.size)
        positions = np.broadcast_to(np.arange(workload.PROMPT_TOKENS), (len(prompts), workload.PROMPT_TOKENS))
        # The loader is checked with f32 compute against HF's f32 logits; bf16 compute differs from them by design
        # (~3e-2 at the small size), so a bf16 run checks an f32 copy of the same weights first.
        checked = load_hf_model(directory, compute_dtype="float32")
        logits, _, _ = checked(jnp.asarray(prompts), jnp.asarray(positions), jnp.ones_like(jnp.asarray(prompts), bool))
        notes.append(f"max |dlogit| vs HF reference (f32 compute): "
                     f"{workload.check_logits(args.size, np.asarray(logits[:, -1])):.2e}")
        del logits
        if args.compute_dtype == "float32":
            model = checked
        else:
            del checked
            model = load_hf_model(directory, compute_dtype=args.compute_dtype)
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
        mesh = make_mesh(data=args.cpu_devices) if args.cpu_devices > 1 else None
        sampler_obj = Sampler(model, mesh=mesh, max_length=workload.PROMPT_TOKENS + workload.NEW_TOKENS)
        learner = make_learner(model, args.compute_dtype, micro, mesh)
        keys = iter(range(10_000))

        def rollout():
            return sampler_obj.sample(learner.policy_state(), prompts, sampling, jax.random.key(next(keys)))

        def batch_of(out):
            texts = tokenizer.batch_decode(out.tokens)
            rewards = np.asarray([workload.toy_reward(prompt_texts[i // workload.GROUP_SIZE], t)
                                  for i, t in enumerate(texts)], np.float32)
            advantages = np.asarray(learner.advantages(rewards))
            return completion_batch(out.prompt_tokens, out.prompt_mask, out.tokens, out.lengths, advantages)

        new_tokens = workload.NUM_PROMPTS * workload.GROUP_SIZE * workload.NEW_TOKENS
        with phases.phase("rollout"):
            rollout_s = measure.time_repetitions(rollout, args.warmup, args.repetitions)
        fixed_batch = batch_of(rollout())
        with phases.phase("train_step"):
            step_s = measure.time_repetitions(lambda: learner.update(fixed_batch), args.warmup, args.repetitions)
        parts: list[float] = []

        def iteration():
            import time

            start = time.perf_counter()
            batch = batch_of(rollout())
            parts.append(time.perf_counter() - start)
            return learner.update(batch)

        with phases.phase("iteration"):
            iteration_s = measure.time_repetitions(iteration, args.warmup, args.repetitions)
    measurements = {
        "rollout_tokens_per_s": workload.measurement([new_tokens / s for s in rollout_s], "tokens/s", args.warmup,
                                                     "Sampler.sample: 8 prompts x 8 samples x 128 tokens"),
        "train_step_s": workload.measurement(step_s, "s", args.warmup, notes[2]),
        "iteration_s": workload.measurement(iteration_s, "s", args.warmup,
                                            "rollout + toy reward + advantages + GRPOLearner.update",
                                            parts={"rollout_reward_s": parts[args.warmup:]}),
        "peak_rss_bytes": measure.peak_rss_record(sampler, phases),
    }
    print(json.dumps(workload.result("exit_jax", args.size, ("jax", "jaxlib", "flax", "optax"), measurements, notes)),
          file=real_stdout)


if __name__ == "__main__":
    main()
