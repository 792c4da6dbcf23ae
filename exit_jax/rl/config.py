"""GRPO learner configuration: the defaults (an ``ml_collections.ConfigDict``) and start-up validation.

Field names follow TRL's ``GRPOConfig`` / Tunix's ``GRPOConfig`` where those exist, so a researcher coming from either
reads the same knobs; the reference-refresh pair uses the ExIt paper's symbols (``M`` -> ``ref_update_interval``,
``alpha`` -> ``ref_update_alpha``; TRL calls them ``ref_model_sync_steps`` / ``ref_model_mixup_alpha``).

Defaults are the ExIt paper's GRPO (Eq. 4: sequence-mean of token-mean, ``epsilon = 0.2``, reference refreshed every 100
iterations with ``alpha = 1``) except ``beta``, which defaults to 0 as in TRL (no reference forward pass); the paper's
math runs use ``beta = 0.001``.
"""

from __future__ import annotations

from typing import Any

import ml_collections
from ml_collections import config_dict

LOSS_TYPES: tuple[str, ...] = ("grpo", "dr_grpo", "dapo", "bnpo")
IMPORTANCE_SAMPLING_LEVELS: tuple[str, ...] = ("token", "sequence")
SCALE_REWARDS: tuple[str, ...] = ("group", "batch", "none")
ADVANTAGE_ESTIMATORS: tuple[str, ...] = ("grpo", "dr_grpo", "rloo")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")


def get_config() -> ml_collections.ConfigDict:
    """Returns the default GRPO learner config (see the module docstring for where each default comes from)."""
    config = ml_collections.ConfigDict()
    # Batch layout: `batch_size` completions per optimizer step = prompts per batch x num_generations.
    config.batch_size = 64
    config.num_generations = 8  # G, rollouts per prompt (group size).
    config.micro_batch_size = config_dict.placeholder(int)  # None: the whole batch in one pass.
    config.max_completion_length = 256  # The constant that `dr_grpo` divides by.
    # Run each group's shared prompt once per micro-batch and attend the G completions to its KV cache (same loss,
    # the prompt's share of the step's work divided by G); used when the batch's groups share a prefix.
    config.share_prompt_prefix = True

    # Objective.
    config.loss_type = "grpo"  # grpo | dr_grpo | dapo | bnpo (TRL semantics, see docs/rl.md).
    config.importance_sampling_level = "token"  # token | sequence (GSPO).
    config.epsilon = 0.2
    config.epsilon_high = config_dict.placeholder(float)  # None: symmetric clip (= epsilon). DAPO uses 0.28.
    config.beta = 0.0  # KL (k3) coefficient; 0 skips the reference model entirely.
    config.num_iterations = 1  # mu: optimizer steps per generated batch, with stored old log-probs.
    config.mask_truncated_completions = False  # Drop completions that hit the length limit from the loss.

    # Advantages.
    config.advantage_estimator = "grpo"  # grpo | dr_grpo | rloo.
    config.scale_rewards = "group"  # group | batch | none (TRL); only the grpo and rloo estimators scale.
    config.reward_std_ddof = 1  # 1: sample std as TRL (torch.std) and Tunix (ddof=1); 0: population std.
    config.advantage_epsilon = 1e-4  # Added to the std before dividing (TRL's 1e-4).

    # Reference policy refresh: theta_ref <- alpha * theta + (1 - alpha) * theta_ref every M iterations.
    config.ref_update_interval = 100  # M; 0 never refreshes.
    config.ref_update_alpha = 1.0  # alpha; 1 is a hard reset to the current policy.

    # Optimizer: AdamW, linear warmup then constant or cosine decay, global-norm clipping.
    config.learning_rate = 1e-6
    config.lr_schedule = "constant"
    config.warmup_steps = 0
    config.num_train_steps = 1000  # Only the cosine schedule's decay length reads this.
    config.weight_decay = 0.0
    config.adam_b1 = 0.9
    config.adam_b2 = 0.999
    config.adam_eps = 1e-8
    config.max_grad_norm = 1.0  # None or 0 disables clipping.
    config.compute_entropy = True
    return config


def _fail(field: str, value: Any, why: str) -> None:
    raise ValueError(f"GRPO config field `{field}` = {value!r}: {why}")


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks that a GRPO config makes sense; raises ``ValueError`` naming the field and the reason.

    Call at start-up, before any compilation, so a bad sweep entry fails in seconds.
    """
    group = config.num_generations
    if not isinstance(group, int) or group < 2:
        _fail("num_generations", group, "a group needs at least 2 rollouts, otherwise every group-relative "
              "advantage is zero and nothing is learned")
    if config.batch_size < 1 or config.batch_size % group:
        _fail("batch_size", config.batch_size,
              f"must be a positive multiple of num_generations ({group}) so every group is whole")
    micro = config.micro_batch_size
    if micro is not None and (micro < 1 or config.batch_size % micro):
        _fail("micro_batch_size", micro, f"must divide batch_size ({config.batch_size})")
    if config.num_iterations < 1:
        _fail("num_iterations", config.num_iterations, "mu (updates per generated batch) must be >= 1")
    if config.beta < 0:
        _fail("beta", config.beta, "the KL coefficient must be >= 0 (0 disables the reference model)")
    if config.epsilon <= 0:
        _fail("epsilon", config.epsilon, "the clip range must be > 0")
    if config.epsilon_high is not None and config.epsilon_high <= 0:
        _fail("epsilon_high", config.epsilon_high, "the upper clip range must be > 0 (or None)")
    if config.loss_type not in LOSS_TYPES:
        _fail("loss_type", config.loss_type, f"unknown loss type; choose one of {LOSS_TYPES}")
    if config.importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        _fail("importance_sampling_level", config.importance_sampling_level,
              f"choose one of {IMPORTANCE_SAMPLING_LEVELS}")
    if config.scale_rewards not in SCALE_REWARDS:
        _fail("scale_rewards", config.scale_rewards, f"choose one of {SCALE_REWARDS}")
    if config.advantage_estimator not in ADVANTAGE_ESTIMATORS:
        _fail("advantage_estimator", config.advantage_estimator,
              f"unknown estimator; choose one of {ADVANTAGE_ESTIMATORS}")
    if config.advantage_estimator == "dr_grpo" and config.scale_rewards != "none":
        _fail("scale_rewards", config.scale_rewards,
              "advantage_estimator='dr_grpo' is the mean-only estimator; set scale_rewards='none'")
    if config.reward_std_ddof not in (0, 1):
        _fail("reward_std_ddof", config.reward_std_ddof, "0 (population std) or 1 (sample std)")
    if config.advantage_epsilon < 0:
        _fail("advantage_epsilon", config.advantage_epsilon, "must be >= 0")
    if config.loss_type == "dr_grpo" and config.max_completion_length < 1:
        _fail("max_completion_length", config.max_completion_length,
              "loss_type='dr_grpo' divides by it, so it must be >= 1")
    if config.ref_update_interval < 0:
        _fail("ref_update_interval", config.ref_update_interval, "must be >= 0 (0 never refreshes)")
    if not 0.0 <= config.ref_update_alpha <= 1.0:
        _fail("ref_update_alpha", config.ref_update_alpha, "the mixing weight must lie in [0, 1]")
    if config.learning_rate <= 0:
        _fail("learning_rate", config.learning_rate, "must be > 0")
    if config.lr_schedule not in LR_SCHEDULES:
        _fail("lr_schedule", config.lr_schedule, f"choose one of {LR_SCHEDULES}")
    if config.warmup_steps < 0:
        _fail("warmup_steps", config.warmup_steps, "must be >= 0")
    if config.lr_schedule == "cosine" and config.num_train_steps <= config.warmup_steps:
        _fail("num_train_steps", config.num_train_steps, "the cosine schedule needs more steps than warmup_steps")
    if config.weight_decay < 0:
        _fail("weight_decay", config.weight_decay, "must be >= 0")
    if config.max_grad_norm is not None and config.max_grad_norm < 0:
        _fail("max_grad_norm", config.max_grad_norm, "must be >= 0 (0 or None disables clipping)")
