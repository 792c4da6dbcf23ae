"""TRL side of the peer benchmarks: transformers `generate` and TRL's GRPOTrainer on CPU.

Runs inside benchmarks/peers/.venvs/trl (see setup.sh) and prints one JSON object in the schema
of workload.py. Measures, on the common workload:
  (a) rollout: `model.generate` of 8 prompts x 8 samples x 128 new tokens, KV cache on;
  (b) train step: TRL's own GRPO loss (`trainer.compute_loss`) + backward + AdamW step on one
      fixed batch produced by `trainer._generate_and_score_completions`;
  (c) iteration: `GRPOTrainer.train()` steps (generate + reward + loss + backward + AdamW), one
      optimiser step per batch, timed between consecutive `on_step_end` callbacks;
  (d) peak resident memory.

``--bf16`` runs all three in bf16 mixed precision with the f32 parameters kept (the side ``trl_bf16``): rollout and
train step under ``torch.autocast("cpu", torch.bfloat16)``, the iteration with ``GRPOConfig(bf16=True)`` (the
Trainer's own autocast). It is the counterpart of ``exit_jax_bf16``, not part of issue 8's f32 workload.

    benchmarks/peers/.venvs/trl/bin/python benchmarks/peers/trl_bench.py --size tiny [--bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import torch  # noqa: E402
import workload  # noqa: E402
from transformers import (  # noqa: E402
    PreTrainedTokenizerFast,
    Qwen2ForCausalLM,
    TrainerCallback,
)

PACKAGES = ("trl", "torch", "transformers", "accelerate")  # versions recorded in the result
BF16 = False  # set by --bf16


def compute_context():
    """bf16 autocast on the CPU with --bf16 (f32 parameters, bf16 matmuls), else nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if BF16 else contextlib.nullcontext()


def load(size: str) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast, list[str]]:
    """The workload's checkpoint, tokenizer and prompt texts, checked against the stored ids."""
    directory = workload.checkpoint_dir(size)
    prompt_ids, prompt_texts = workload.load_prompts(size)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    for ids, text in zip(prompt_ids, prompt_texts, strict=True):
        if tokenizer(text)["input_ids"] != ids:
            raise RuntimeError("the TRL tokenizer does not reproduce the workload's prompt ids")
    model = Qwen2ForCausalLM.from_pretrained(directory, dtype=torch.float32)
    return model, tokenizer, prompt_texts


def measure_rollout(model, tokenizer, size: str, warmup: int, repetitions: int) -> list[float]:
    """Seconds per `generate` call of the whole batch (64 rows x 128 new tokens)."""
    prompt_ids, _ = workload.load_prompts(size)
    input_ids = torch.tensor(prompt_ids).repeat_interleave(workload.GROUP_SIZE, dim=0)
    attention_mask = torch.ones_like(input_ids)
    model.eval()

    def generate_once():
        with torch.no_grad(), compute_context():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                temperature=workload.TEMPERATURE,
                top_k=0,
                top_p=1.0,
                max_new_tokens=workload.NEW_TOKENS,
                min_new_tokens=workload.NEW_TOKENS,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
        expected = (input_ids.shape[0], workload.PROMPT_TOKENS + workload.NEW_TOKENS)
        if tuple(output.shape) != expected:
            raise RuntimeError(f"generate returned {tuple(output.shape)}, expected {expected}")
        return output

    torch.manual_seed(workload.SEED)
    return measure.time_repetitions(generate_once, warmup, repetitions)


def reward_function(prompts, completions, **kwargs) -> list[float]:
    """TRL reward-function signature around the workload's toy reward."""
    del kwargs
    return [workload.toy_reward(p, c) for p, c in zip(prompts, completions, strict=True)]


class StepClock(TrainerCallback):
    """Records the wall-clock time at the end of every optimiser step."""

    def __init__(self) -> None:
        self.step_ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.step_ends.append(time.perf_counter())


def make_trainer(model, tokenizer, prompt_texts: list[str], steps: int, output_dir: str):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that records the seconds of each rollout + reward + advantage phase."""

        rollout_seconds: list[float] = []

        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            output = super()._generate_and_score_completions(inputs)
            self.rollout_seconds.append(time.perf_counter() - start)
            return output

    batch = workload.NUM_PROMPTS * workload.GROUP_SIZE
    config = GRPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        bf16=BF16,
        fp16=False,
        seed=workload.SEED,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        # TRL turns activation checkpointing on by default; Tunix and exit_jax run without it.
        gradient_checkpointing=False,
        activation_checkpointing=False,
        max_steps=steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        num_generations=workload.GROUP_SIZE,
        shuffle_dataset=False,
        max_completion_length=workload.NEW_TOKENS,
        temperature=workload.TEMPERATURE,
        top_k=0,
        top_p=1.0,
        # EOS would stop generation early; the workload always generates NEW_TOKENS tokens.
        generation_kwargs={"min_new_tokens": workload.NEW_TOKENS},
        use_vllm=False,
        beta=workload.KL_BETA,
        epsilon=workload.CLIP_EPSILON,
        loss_type="grpo",
        scale_rewards="group",
        learning_rate=workload.LEARNING_RATE,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        adam_beta1=workload.ADAM_B1,
        adam_beta2=workload.ADAM_B2,
        adam_epsilon=workload.ADAM_EPS,
        weight_decay=workload.WEIGHT_DECAY,
        max_grad_norm=0.0,
        dataloader_num_workers=0,
    )
    # Each step consumes NUM_PROMPTS distinct rows, each generated GROUP_SIZE times.
    dataset = Dataset.from_dict({"prompt": prompt_texts * steps})
    trainer = TimedGRPOTrainer(
        model=model,
        reward_funcs=reward_function,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.rollout_seconds = []
    return trainer


def measure_train_step(
    trainer, prompt_texts: list[str], warmup: int, repetitions: int
) -> list[float]:
    """Seconds of TRL's GRPO loss + backward + AdamW step on one fixed generated batch."""
    model = trainer.model
    model.train()
    rows = [{"prompt": text} for text in prompt_texts for _ in range(workload.GROUP_SIZE)]
    batch = trainer._generate_and_score_completions(rows)
    completion_shape = tuple(batch["completion_ids"].shape)
    expected = (len(rows), workload.NEW_TOKENS)
    if completion_shape != expected:
        raise RuntimeError(f"TRL generated {completion_shape}, expected {expected}")
    trainer.create_optimizer()
    optimizer = trainer.optimizer
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop, which we bypass

    def step_once():
        with compute_context():
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return measure.time_repetitions(step_once, warmup, repetitions)


def measure_iterations(
    model, tokenizer, prompt_texts, warmup: int, repetitions: int
) -> tuple[list[float], list[float]]:
    """Seconds per full GRPOTrainer step (between consecutive step ends) and of the rollout +
    reward part of the same steps, warm-up dropped."""
    with tempfile.TemporaryDirectory() as output_dir:
        # One extra step: the first interval starts at the first step's end.
        trainer = make_trainer(model, tokenizer, prompt_texts, warmup + repetitions + 1, output_dir)
        clock = StepClock()
        trainer.add_callback(clock)
        trainer.train()
    intervals = [b - a for a, b in zip(clock.step_ends, clock.step_ends[1:], strict=False)]
    return intervals[warmup:], trainer.rollout_seconds[1:][warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workload.SIZES), default="tiny")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, f32 parameters (side trl_bf16)")
    args = parser.parse_args()
    global BF16
    BF16 = args.bf16

    torch.manual_seed(workload.SEED)
    notes = [
        f"torch threads: {torch.get_num_threads()}",
        "EOS suppressed with min_new_tokens=128 (TRL/transformers cannot ignore it)",
    ] + (["bf16 autocast on CPU (f32 parameters): generate and compute_loss under torch.autocast, "
          "train() with GRPOConfig(bf16=True)"] if BF16 else [])
    step_note = (
        "trainer.compute_loss (loss_type='grpo') + backward + AdamW step; "
        "TRL skips old log-probs when num_iterations=1 and beta=0"
    )
    real_stdout = sys.stdout
    phases = measure.PhasePeaks()
    with contextlib.redirect_stdout(sys.stderr), measure.RssSampler() as sampler:
        model, tokenizer, prompt_texts = load(args.size)
        new_tokens = workload.NUM_PROMPTS * workload.GROUP_SIZE * workload.NEW_TOKENS
        with phases.phase("rollout"):
            rollout_s = measure_rollout(model, tokenizer, args.size, args.warmup, args.repetitions)
        with tempfile.TemporaryDirectory() as output_dir, phases.phase("train_step"):
            trainer = make_trainer(model, tokenizer, prompt_texts, 1, output_dir)
            step_s = measure_train_step(trainer, prompt_texts, args.warmup, args.repetitions)
            del trainer
        with phases.phase("iteration"):
            iteration_s, rollout_part_s = measure_iterations(
                model, tokenizer, prompt_texts, args.warmup, args.repetitions
            )
    measurements = {
        "rollout_tokens_per_s": workload.measurement(
            [new_tokens / s for s in rollout_s],
            "tokens/s",
            args.warmup,
            "model.generate, do_sample, temperature 1, top_k 0, KV cache, 64 rows x 128 tokens",
        ),
        "train_step_s": workload.measurement(step_s, "s", args.warmup, step_note),
        "iteration_s": workload.measurement(
            iteration_s,
            "s",
            args.warmup,
            "GRPOTrainer.train(), interval between consecutive on_step_end callbacks",
            parts={"rollout_reward_s": rollout_part_s},
        ),
        "peak_rss_bytes": measure.peak_rss_record(sampler, phases),
    }
    print(
        json.dumps(workload.result("trl_bf16" if BF16 else "trl", args.size, PACKAGES, measurements, notes)),
        file=real_stdout,
    )


if __name__ == "__main__":
    main()
