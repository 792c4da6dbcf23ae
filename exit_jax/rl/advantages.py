"""Group-relative advantage estimators (GRPO, Dr. GRPO, RLOO) as pure ``jnp`` functions, plus a registry by name.

Layout convention: ``rewards`` is ``[batch]`` with the ``num_generations`` rollouts of one prompt contiguous, i.e.
``rewards.reshape(num_prompts, num_generations)`` gives one group per row (the sampler's order).

Zero-variance groups (every rollout got the same reward) get an advantage of exactly zero, never NaN, whatever the
estimator or the epsilon: such a group carries no learning signal, and floating-point residue of ``r - mean`` must not
be amplified by a division by ``epsilon``.

The per-sample ``multiplier`` is applied last (``A_i <- d_i * A_i``, ExIt Eq. 3): the diversity bonus plugs in here.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _grouped(rewards: jax.Array, num_generations: int) -> jax.Array:
    if rewards.ndim != 1 or rewards.shape[0] % num_generations:
        raise ValueError(
            f"rewards must be [batch] with batch divisible by num_generations={num_generations}; "
            f"got shape {rewards.shape}")
    return rewards.astype(jnp.float32).reshape(-1, num_generations)


def _zero_variance(grouped: jax.Array) -> jax.Array:
    """[P, G] -> [P, 1] bool: True where every reward in the group is identical."""
    return (grouped.max(axis=1, keepdims=True) == grouped.min(axis=1, keepdims=True))


def _scale(centred: jax.Array, grouped: jax.Array, scale_rewards: str, std_ddof: int,
           epsilon: float) -> jax.Array:
    if scale_rewards == "none":
        return centred
    if scale_rewards == "group":
        std = jnp.std(grouped, axis=1, ddof=std_ddof, keepdims=True)
    elif scale_rewards == "batch":  # Group mean, batch std (Lite-PPO / TRL's scale_rewards="batch").
        std = jnp.std(grouped, ddof=std_ddof)
    else:
        raise ValueError(f"scale_rewards must be 'group', 'batch' or 'none'; got {scale_rewards!r}")
    return centred / (std + epsilon)


def grpo_advantages(rewards: jax.Array, num_generations: int, *, scale_rewards: str = "group",
                    std_ddof: int = 1, epsilon: float = 1e-4) -> jax.Array:
    """GRPO: ``(r_i - mean(group)) / (std + epsilon)``.

    Args:
      rewards: [batch] f32, groups contiguous.
      num_generations: group size G.
      scale_rewards: "group" (std of the group, default), "batch" (std of the whole batch), "none" (no division).
      std_ddof: 1 for the sample std (TRL/Tunix default), 0 for the population std.
      epsilon: added to the std.

    Returns:
      [batch] f32 advantages; exactly 0 for zero-variance groups.
    """
    grouped = _grouped(rewards, num_generations)
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    scaled = _scale(centred, grouped, scale_rewards, std_ddof, epsilon)
    return jnp.where(_zero_variance(grouped), 0.0, scaled).reshape(-1)


def dr_grpo_advantages(rewards: jax.Array, num_generations: int, **unused) -> jax.Array:
    """Dr. GRPO (Liu et al. 2025): ``r_i - mean(group)``, no std division. [batch] -> [batch]."""
    del unused
    return grpo_advantages(rewards, num_generations, scale_rewards="none")


def rloo_advantages(rewards: jax.Array, num_generations: int, *, scale_rewards: str = "none",
                    std_ddof: int = 1, epsilon: float = 1e-4) -> jax.Array:
    """RLOO: ``r_i - mean_{j != i} r_j`` (= ``G / (G - 1) * (r_i - mean)``), optionally std-scaled.

    Args and returns as ``grpo_advantages``; scaling (if any) divides by the group's or batch's reward std.
    """
    grouped = _grouped(rewards, num_generations)
    leave_one_out_mean = (grouped.sum(axis=1, keepdims=True) - grouped) / (num_generations - 1)
    centred = grouped - leave_one_out_mean
    scaled = _scale(centred, grouped, scale_rewards, std_ddof, epsilon)
    return jnp.where(_zero_variance(grouped), 0.0, scaled).reshape(-1)


AdvantageFn = Callable[..., jax.Array]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {
    "grpo": grpo_advantages,
    "dr_grpo": dr_grpo_advantages,
    "rloo": rloo_advantages,
}


def register_advantage_estimator(name: str, fn: AdvantageFn) -> None:
    """Adds an estimator ``fn(rewards [batch], num_generations, **options) -> [batch]`` under ``name``."""
    if name in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"advantage estimator {name!r} is already registered")
    ADVANTAGE_ESTIMATORS[name] = fn


def compute_advantages(rewards: jax.Array, num_generations: int, *, estimator: str = "grpo",
                       scale_rewards: str = "group", std_ddof: int = 1, epsilon: float = 1e-4,
                       multiplier: jax.Array | None = None) -> jax.Array:
    """Advantages by estimator name, times an optional per-sample multiplier.

    Args:
      rewards: [batch] rewards, groups of ``num_generations`` contiguous.
      num_generations: group size G.
      estimator: a key of ``ADVANTAGE_ESTIMATORS``.
      scale_rewards, std_ddof, epsilon: see ``grpo_advantages`` (ignored by "dr_grpo").
      multiplier: optional [batch] per-sample factor (the ExIt diversity bonus d_i), applied after scaling.

    Returns:
      [batch] f32 advantages.
    """
    if estimator not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {estimator!r}; known: {sorted(ADVANTAGE_ESTIMATORS)}")
    advantages = ADVANTAGE_ESTIMATORS[estimator](
        rewards, num_generations, scale_rewards=scale_rewards, std_ddof=std_ddof, epsilon=epsilon)
    if multiplier is not None:
        if multiplier.shape != advantages.shape:
            raise ValueError(f"multiplier must be [batch] = {advantages.shape}; got {multiplier.shape}")
        advantages = advantages * multiplier.astype(jnp.float32)
    return advantages


def config_advantages(rewards: jax.Array, config, multiplier: jax.Array | None = None) -> jax.Array:
    """``compute_advantages`` with every option read from a GRPO config (``exit_jax.rl.config``)."""
    return compute_advantages(
        rewards, config.num_generations, estimator=config.advantage_estimator,
        scale_rewards=config.scale_rewards, std_ddof=config.reward_std_ddof,
        epsilon=config.advantage_epsilon, multiplier=multiplier)


def reward_metrics(rewards: jax.Array, num_generations: int) -> dict[str, jax.Array]:
    """TRL-named reward diagnostics: ``reward``, ``reward_std`` (mean group sample std), ``frac_reward_zero_std``.

    Args:
      rewards: [batch], groups contiguous.
    """
    grouped = _grouped(rewards, num_generations)
    return {
        "reward": grouped.mean(),
        "reward_std": jnp.std(grouped, axis=1, ddof=1).mean(),
        "frac_reward_zero_std": _zero_variance(grouped).astype(jnp.float32).mean(),
    }
