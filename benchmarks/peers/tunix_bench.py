"""Tunix side of the peer benchmarks: its Qwen2 model, vanilla KV-cache sampler and GRPOLearner.

Runs inside benchmarks/peers/.venvs/tunix (see setup.sh) on JAX's CPU backend and prints one JSON
object in the schema of workload.py. Measures, on the common workload:
  (a) rollout: `tunix.generate.sampler.Sampler` (jitted prefill + while-loop decode with a
      donated KV cache), 8 prompts x 8 samples x 128 new tokens, text in and text out;
  (b) train step: `RLCluster.update_actor` (Tunix's jitted GRPO loss + grad + optax AdamW) on one
      fixed TrainExample produced by `GRPOLearner._generate_and_compute_advantage`;
  (c) iteration: `GRPOLearner.train()` global steps (rollout + reward + advantages + update);
  (d) peak resident memory.
The model is loaded with Tunix's own safetensors loader and checked against the HF logits.

    benchmarks/peers/.venvs/tunix/bin/python benchmarks/peers/tunix_bench.py --size tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import measure  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import workload  # noqa: E402
from flax import nnx  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from tunix.generate import sampler as sampler_lib  # noqa: E402
from tunix.models.qwen2 import model as qwen2_model  # noqa: E402
from tunix.models.qwen2 import params as qwen2_params  # noqa: E402
from tunix.rl import rl_cluster as rl_cluster_lib  # noqa: E402
from tunix.rl.grpo import grpo_learner  # noqa: E402
from tunix.rl.rollout import base_rollout  # noqa: E402

# No token id equals -1: EOS is an ordinary token and every row generates NEW_TOKENS tokens.
NO_STOP_TOKENS = [-1]
KV_CACHE_SIZE = workload.PROMPT_TOKENS + workload.NEW_TOKENS

PACKAGES = ("google-tunix", "jax", "jaxlib", "flax", "optax")  # versions recorded in the result


def model_config(size: str) -> qwen2_model.ModelConfig:
    dims = workload.SIZES[size]
    return qwen2_model.ModelConfig(
        num_layers=dims.layers,
        vocab_size=workload.VOCAB_SIZE,
        embed_dim=dims.hidden,
        hidden_dim=dims.ffn,
        num_heads=dims.heads,
        head_dim=dims.head_dim,
        num_kv_heads=dims.kv_heads,
        rope_theta=workload.ROPE_THETA,
        norm_eps=workload.RMS_NORM_EPS,
        use_tied_embedding=True,
    )


def load(size: str, mesh: jax.sharding.Mesh):
    """Tunix Qwen2 from the workload's safetensors, its tokenizer and prompts; logits checked."""
    directory = workload.checkpoint_dir(size)
    prompt_ids, prompt_texts = workload.load_prompts(size)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    for ids, text in zip(prompt_ids, prompt_texts, strict=True):
        if tokenizer.encode(text) != ids:
            raise RuntimeError("the Tunix-side tokenizer does not reproduce the prompt ids")
    model = qwen2_params.create_model_from_safe_tensors(
        str(directory), model_config(size), mesh=mesh, dtype=jnp.float32
    )
    tokens = jnp.asarray(prompt_ids, dtype=jnp.int32)
    length = tokens.shape[1]
    positions = jnp.broadcast_to(jnp.arange(length), tokens.shape)
    causal = jnp.broadcast_to(
        jnp.tril(jnp.ones((length, length), dtype=bool)), (tokens.shape[0], length, length)
    )
    logits, _ = model(tokens, positions, None, causal)
    difference = workload.check_logits(size, np.asarray(logits[:, -1, :]))
    return model, tokenizer, prompt_texts, difference


def grouped(prompt_texts: list[str]) -> list[str]:
    """Each prompt repeated GROUP_SIZE times in a row (the GRPO batch layout)."""
    return [text for text in prompt_texts for _ in range(workload.GROUP_SIZE)]


def measure_rollout(model, tokenizer, prompt_texts, warmup: int, repetitions: int):
    """Seconds per Sampler call of the whole batch (64 rows x 128 new tokens)."""
    config = model.config
    sampler = sampler_lib.Sampler(
        model,
        tokenizer,
        sampler_lib.CacheConfig(
            cache_size=KV_CACHE_SIZE,
            num_layers=config.num_layers,
            num_kv_heads=config.num_kv_heads,
            head_dim=config.head_dim,
        ),
    )
    inputs = grouped(prompt_texts)
    calls = iter(range(10**6))

    def sample_once():
        output = sampler(
            inputs,
            max_generation_steps=workload.NEW_TOKENS,
            max_prompt_length=workload.PROMPT_TOKENS,
            temperature=workload.TEMPERATURE,
            top_p=1.0,
            top_k=None,
            eos_tokens=NO_STOP_TOKENS,
            seed=next(calls),
        )
        lengths = {len(tokens) for tokens in output.tokens}
        if lengths != {workload.NEW_TOKENS}:
            raise RuntimeError(f"Tunix sampled completion lengths {lengths}")
        return output

    return measure.time_repetitions(sample_once, warmup, repetitions)


class TimedGRPOLearner(grpo_learner.GRPOLearner):
    """GRPOLearner that records the wall-clock seconds of every global step (one batch)."""

    step_seconds: list[float]
    rollout_seconds: list[float]

    def _generate_and_compute_advantage(self, *args, **kwargs):
        start = time.perf_counter()
        example = super()._generate_and_compute_advantage(*args, **kwargs)
        jax.block_until_ready(example)
        self.rollout_seconds.append(time.perf_counter() - start)
        return example

    def _run_global_step(self, *args, **kwargs):
        start = time.perf_counter()
        super()._run_global_step(*args, **kwargs)
        jax.block_until_ready(nnx.state(self.rl_cluster.actor_trainer.model))
        self.step_seconds.append(time.perf_counter() - start)


def make_learner(model, tokenizer, mesh, max_steps: int) -> TimedGRPOLearner:
    optimizer = optax.adamw(
        workload.LEARNING_RATE,
        b1=workload.ADAM_B1,
        b2=workload.ADAM_B2,
        eps=workload.ADAM_EPS,
        weight_decay=workload.WEIGHT_DECAY,
    )
    training_config = rl_cluster_lib.RLTrainingConfig(
        actor_optimizer=optimizer,
        eval_every_n_steps=10**9,
        max_steps=max_steps,
        mini_batch_size=workload.NUM_PROMPTS,
        train_micro_batch_size=workload.NUM_PROMPTS,
        rollout_micro_batch_size=workload.NUM_PROMPTS,
        compute_logps_micro_batch_size=workload.NUM_PROMPTS,
    )
    rollout_config = base_rollout.RolloutConfig(
        max_tokens_to_generate=workload.NEW_TOKENS,
        max_prompt_length=workload.PROMPT_TOKENS,
        kv_cache_size=KV_CACHE_SIZE,
        temperature=workload.TEMPERATURE,
        top_p=1.0,
        top_k=None,
        eos_tokens=NO_STOP_TOKENS,
    )
    roles = rl_cluster_lib.Role
    cluster = rl_cluster_lib.RLCluster(
        actor=model,
        reference=None,
        tokenizer=tokenizer,
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={roles.ACTOR: mesh, roles.REFERENCE: mesh, roles.ROLLOUT: mesh},
            rollout_engine="vanilla",
            offload_to_cpu=False,
            training_config=training_config,
            rollout_config=rollout_config,
        ),
    )
    algorithm = grpo_learner.GRPOConfig(
        num_generations=workload.GROUP_SIZE,
        num_iterations=1,
        beta=workload.KL_BETA,
        epsilon=workload.CLIP_EPSILON,
    )

    def reward(prompts, completions, **kwargs):
        del kwargs
        return [workload.toy_reward(p, c) for p, c in zip(prompts, completions, strict=True)]

    learner = TimedGRPOLearner(rl_cluster=cluster, algo_config=algorithm, reward_fns=reward)
    learner.step_seconds, learner.rollout_seconds = [], []
    # Normally set by train(); the train-step measurement calls the learner's pieces first.
    learner._rollout_micro_batch_size = workload.NUM_PROMPTS
    learner._compute_logps_micro_batch_size = workload.NUM_PROMPTS
    return learner


def measure_train_step(learner, prompt_texts, warmup: int, repetitions: int) -> list[float]:
    """Seconds of one `update_actor` (loss + grad + AdamW) on a fixed generated batch."""
    example = learner._generate_and_compute_advantage({"prompts": grouped(prompt_texts)})
    shape = tuple(example.completion_ids.shape)
    expected = (workload.NUM_PROMPTS * workload.GROUP_SIZE, workload.NEW_TOKENS)
    if shape != expected:
        raise RuntimeError(f"Tunix generated completions of shape {shape}, expected {expected}")
    cluster = learner.rl_cluster

    def step_once():
        cluster.update_actor([example], None, False)
        return nnx.state(cluster.actor_trainer.model)

    return measure.time_repetitions(step_once, warmup, repetitions, sync=jax.block_until_ready)


def measure_iterations(
    learner, prompt_texts, warmup: int, repetitions: int
) -> tuple[list[float], list[float]]:
    """Seconds per GRPOLearner global step (rollout + reward + update) and of its rollout +
    reward + advantage part, warm-up dropped."""
    # An array, as grain batches it: RLLearner repeats the batch with jax.tree.map(np.repeat),
    # which would treat a list of strings as a pytree of leaves.
    batches = [{"prompts": np.array(prompt_texts)} for _ in range(warmup + repetitions)]
    learner.step_seconds, learner.rollout_seconds = [], []
    learner.train(batches)
    return learner.step_seconds[warmup:], learner.rollout_seconds[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workload.SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    real_stdout = sys.stdout
    phases = measure.PhasePeaks()
    with contextlib.redirect_stdout(sys.stderr), measure.RssSampler() as sampler:
        mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
        with jax.set_mesh(mesh):
            model, tokenizer, prompt_texts, logit_difference = load(args.size, mesh)
            with phases.phase("rollout"):
                rollout_s = measure_rollout(
                    model, tokenizer, prompt_texts, args.warmup, args.repetitions
                )
            # The train-step batches also count as GRPO steps: max_steps covers both phases.
            learner = make_learner(model, tokenizer, mesh, 10**6)
            with phases.phase("train_step"):
                step_s = measure_train_step(learner, prompt_texts, args.warmup, args.repetitions)
            with phases.phase("iteration"):
                iteration_s, rollout_part_s = measure_iterations(
                    learner, prompt_texts, args.warmup, args.repetitions
                )
    new_tokens = workload.NUM_PROMPTS * workload.GROUP_SIZE * workload.NEW_TOKENS
    notes = [
        f"jax devices: {jax.devices()}",
        f"loaded model vs HF reference logits: max |diff| = {logit_difference:.2e}",
        "EOS ignored via eos_tokens=[-1] (EOS is sampled as an ordinary token)",
        f"KV cache size {KV_CACHE_SIZE} (prompt + new tokens)",
    ]
    measurements = {
        "rollout_tokens_per_s": workload.measurement(
            [new_tokens / s for s in rollout_s],
            "tokens/s",
            args.warmup,
            "tunix Sampler (vanilla KV cache), temperature 1, top_p 1, text in/out",
        ),
        "train_step_s": workload.measurement(
            step_s,
            "s",
            args.warmup,
            "RLCluster.update_actor on one TrainExample: GRPO loss + grad + AdamW (jitted)",
        ),
        "iteration_s": workload.measurement(
            iteration_s,
            "s",
            args.warmup,
            "GRPOLearner.train(): one global step = rollout + reward + advantage + update",
            parts={"rollout_reward_s": rollout_part_s},
        ),
        "peak_rss_bytes": measure.peak_rss_record(sampler, phases),
    }
    print(
        json.dumps(workload.result("tunix", args.size, PACKAGES, measurements, notes)),
        file=real_stdout,
    )


if __name__ == "__main__":
    main()
