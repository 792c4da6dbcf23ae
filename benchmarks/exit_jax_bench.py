"""exit_jax's side of the peer benchmark (benchmarks/peers/README.md): same workload, same JSON schema.

    python benchmarks/exit_jax_bench.py --size tiny [--warmup 1] [--repetitions 3] [--compute_dtype float32]
                                        [--micro_batch_size N]

Loads the workload's Qwen2 checkpoint with exit_jax's HF loader (checked against HF's reference logits), then measures
(a) rollout: 8 prompts x G = 8 with one shared prefill per prompt, exactly 128 new tokens, temperature 1;
(b) one GRPO train step (forward, backward, AdamW) on that batch; (c) one full iteration: rollout + toy reward +
advantages + update; (d) peak resident memory. Prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

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

# Rows per forward / backward pass (gradients accumulated, still one optimiser step per batch). At the small size a
# full-batch run's process grew to 16 GiB (seen 2026-11-22 with ps; by estimate the activations saved for the
# backward of 64 rows x 192 columns x 12 layers in f32), far over issue 8's 4 GiB; passes of 8 rows cut them 8-fold.
MICRO_BATCH_SIZE = {"tiny": None, "small": 8}


def make_learner(model, compute_dtype: str, micro_batch_size: int | None = None):
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
    return GRPOLearner(model, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workload.SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--micro_batch_size", type=int, default=None,
                        help="rows per forward/backward pass (default: MICRO_BATCH_SIZE of the size)")
    args = parser.parse_args()
    micro = args.micro_batch_size or MICRO_BATCH_SIZE[args.size]
    real_stdout = sys.stdout
    phases = measure.PhasePeaks()
    notes = [f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores; "
             f"f32 parameters, {args.compute_dtype} compute",
             "rollout: one prefill per prompt, KV cache repeated G times, jitted while-loop decode; "
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
        sampler_obj = Sampler(model, max_length=workload.PROMPT_TOKENS + workload.NEW_TOKENS)
        sampling = SamplingConfig(max_new_tokens=workload.NEW_TOKENS, num_samples=workload.GROUP_SIZE,
                                  temperature=workload.TEMPERATURE, prompt_bucket=workload.PROMPT_TOKENS)
        learner = make_learner(model, args.compute_dtype, micro)
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
