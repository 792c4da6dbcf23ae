"""The GRPO objective: token log-probs, clipped importance ratio (token or sequence level), k3 KL, and aggregation.

Token alignment: every per-token array is ``[batch, seq]`` aligned with ``tokens``; entry ``t`` belongs to
``tokens[:, t]`` and is predicted by the logits at ``t - 1``. Column 0 is never a completion token (it has no
prediction), so ``token_log_probs`` puts 0 there and the loss mask must be False there.

Aggregation as per-token weights. Every ``loss_type`` is a weighted token sum ``L = sum_{i,t} w_{i,t} l_{i,t}``:

| loss_type | ``w_{i,t}`` for an active token (mask=1) | TRL / paper name |
|---|---|---|
| ``grpo`` | ``1 / (B * |o_i|)`` | sequence-mean of token-mean (paper Eq. 4) |
| ``dr_grpo`` | ``1 / (B * max_completion_length)`` | Dr. GRPO, constant normaliser |
| ``dapo`` | ``1 / (active tokens in the whole batch)`` | token-mean over the global batch |
| ``bnpo`` | ``1 / (M * active tokens in i's micro-batch)`` | token-mean per (local) micro-batch, mean over M |

``B`` is the global batch size and ``M`` the number of micro-batches. The weights are computed once for the whole
batch *before* it is split into micro-batches, so the sum of the micro-batch gradients equals the full-batch gradient
for every loss type by linearity (``dapo`` is normalised by the global active-token count, not per micro-batch).
Row ``i`` belongs to micro-batch ``(i // block) % M``: ``block = 1`` (interleaved rows) unless the step shares each
group's prompt prefix (see ``train_step.split_microbatches``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_log_probs_and_entropy(logits: jax.Array, tokens: jax.Array,
                                with_entropy: bool = True) -> tuple[jax.Array, jax.Array | None]:
    """Log-probability of each token under the logits that predict it, and the predictive entropy there.

    Args:
      logits: [batch, seq, vocab] (any float dtype; computed in f32).
      tokens: [batch, seq] int.
      with_entropy: also return the entropy of each predictive distribution.

    Returns:
      log_probs [batch, seq] f32 (column 0 is 0) and entropy [batch, seq] f32 (column 0 is 0) or None.
    """
    # Work on all T positions and shift the [batch, seq] results, not the [batch, seq, vocab] logits: slicing the
    # logits puts a pad / transposed copy of the whole logit gradient in the backward pass. The target logit is
    # picked with a compare-select-sum (its gradient is a fused select) rather than take_along_axis (a scatter).
    logits = logits.astype(jnp.float32)
    targets = jnp.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1).astype(jnp.int32)  # last column unused
    log_normaliser = jax.nn.logsumexp(logits, axis=-1)
    vocab_ids = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
    target_logit = jnp.sum(jnp.where(vocab_ids == targets[..., None], logits, 0.0), axis=-1)
    pad = jnp.zeros((tokens.shape[0], 1), jnp.float32)
    log_probs = jnp.concatenate([pad, (target_logit - log_normaliser)[:, :-1]], axis=1)
    entropy = None
    if with_entropy:
        probs = jnp.exp(logits - log_normaliser[..., None])
        ent = log_normaliser - jnp.sum(probs * logits, axis=-1)
        entropy = jnp.concatenate([pad, ent[:, :-1]], axis=1)
    return log_probs, entropy


def token_log_probs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
    """[batch, seq, vocab], [batch, seq] -> [batch, seq] f32 log-probs (column 0 is 0)."""
    return token_log_probs_and_entropy(logits, tokens, with_entropy=False)[0]


def aggregation_weights(loss_mask: jax.Array, loss_type: str, *, max_completion_length: int = 1,
                        num_microbatches: int = 1, block: int = 1) -> jax.Array:
    """Per-token weights that turn a per-token loss into the ``loss_type`` aggregate (table in the module docstring).

    Args:
      loss_mask: [batch, seq] bool/float, 1 on tokens that are trained.
      loss_type: grpo | dr_grpo | dapo | bnpo.
      max_completion_length: the constant of ``dr_grpo``.
      num_microbatches: M; only ``bnpo`` depends on it (row ``i`` is in micro-batch ``(i // block) % M``).
      block: rows per block of ``train_step.split_microbatches`` (1: interleaved rows).

    Returns:
      [batch, seq] f32 weights, zero where the mask is zero.
    """
    mask = loss_mask.astype(jnp.float32)
    batch = mask.shape[0]
    if loss_type == "grpo":
        per_sequence = jnp.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return mask / (per_sequence * batch)
    if loss_type == "dr_grpo":
        return mask / (batch * max_completion_length)
    if loss_type == "dapo":
        return mask / jnp.maximum(mask.sum(), 1.0)
    if loss_type == "bnpo":
        if batch % (num_microbatches * block):
            raise ValueError(f"batch {batch} is not divisible into {num_microbatches} micro-batches of blocks of "
                             f"{block} rows")
        per_row = mask.sum(axis=1)
        micro_of_row = (jnp.arange(batch) // block) % num_microbatches
        per_micro = jax.ops.segment_sum(per_row, micro_of_row, num_segments=num_microbatches)
        denominator = jnp.maximum(per_micro[micro_of_row], 1.0) * num_microbatches
        return mask / denominator[:, None]
    raise ValueError(f"unknown loss_type {loss_type!r}; choose grpo, dr_grpo, dapo or bnpo")


def per_token_objective(log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array,
                        loss_mask: jax.Array, *, epsilon: float, epsilon_high: float | None = None,
                        importance_sampling_level: str = "token", ref_log_probs: jax.Array | None = None,
                        beta: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Per-token clipped-surrogate loss plus ``beta`` * k3 KL, to be multiplied by ``aggregation_weights``.

    ``l_{i,t} = -min(rho A_i, clip(rho, 1 - epsilon, 1 + epsilon_high) A_i) + beta * KL_{i,t}`` with
    ``rho = exp(log_probs - old_log_probs)`` per token, or (GSPO, ``importance_sampling_level='sequence'``)
    ``rho_i = exp(mean_t (log_probs - old_log_probs))`` shared by every token of sequence ``i``.
    ``KL_{i,t} = exp(ref - logp) - (ref - logp) - 1`` (Schulman's k3, unbiased and >= 0).

    Args:
      log_probs: [batch, seq] f32 current-policy log-probs (differentiated).
      old_log_probs: [batch, seq] log-probs of the policy that sampled (treated as constants).
      advantages: [batch] per-sequence advantages.
      loss_mask: [batch, seq] 1 on trained tokens; masked tokens have ratio 1 and KL 0 so garbage there is harmless.
      epsilon, epsilon_high: lower and upper clip ranges (``epsilon_high=None`` -> ``epsilon``).
      importance_sampling_level: "token" or "sequence".
      ref_log_probs: [batch, seq] reference-policy log-probs; needed only when ``beta > 0``.
      beta: KL coefficient.

    Returns:
      per-token loss [batch, seq] and per-token diagnostics (``kl``, ``is_low_clipped``, ``is_high_clipped``,
      ``is_region_clipped``, ``ratio``), each [batch, seq] f32.
    """
    mask = loss_mask.astype(bool)
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    old_log_probs = jax.lax.stop_gradient(old_log_probs)
    log_ratio = jnp.where(mask, log_probs - old_log_probs, 0.0)
    if importance_sampling_level == "sequence":
        lengths = jnp.maximum(mask.sum(axis=1, keepdims=True), 1)
        log_ratio = jnp.broadcast_to(log_ratio.sum(axis=1, keepdims=True) / lengths, log_ratio.shape)
    elif importance_sampling_level != "token":
        raise ValueError(f"importance_sampling_level must be 'token' or 'sequence'; got "
                         f"{importance_sampling_level!r}")
    ratio = jnp.exp(log_ratio)
    advantage = advantages.astype(jnp.float32)[:, None]
    # -min(rho A, clip(rho) A), written as an explicit switch so the boundary is well defined: a ratio exactly on
    # 1 - epsilon or 1 + epsilon_high is *not* clipped and keeps the unclipped gradient (as torch.clamp does).
    is_low = (ratio < 1.0 - epsilon) & (advantage < 0)
    is_high = (ratio > 1.0 + epsilon_high) & (advantage > 0)
    clip_value = jnp.where(is_low, 1.0 - epsilon, 1.0 + epsilon_high)
    loss = -jnp.where(is_low | is_high, clip_value * advantage, ratio * advantage)
    kl = jnp.zeros_like(loss)
    if beta > 0:
        if ref_log_probs is None:
            raise ValueError("beta > 0 needs ref_log_probs")
        ref_minus_policy = jnp.where(mask, jax.lax.stop_gradient(ref_log_probs) - log_probs, 0.0)
        kl = jnp.exp(ref_minus_policy) - ref_minus_policy - 1.0
        loss = loss + beta * kl
    diagnostics = {
        "kl": kl,
        "is_low_clipped": is_low.astype(jnp.float32),
        "is_high_clipped": is_high.astype(jnp.float32),
        "is_region_clipped": (is_low | is_high).astype(jnp.float32),
        "ratio": ratio,
    }
    return loss, diagnostics


def aggregated_loss(log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array,
                    loss_mask: jax.Array, weights: jax.Array, **objective_options
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``sum(weights * per_token_objective)`` plus masked *sums* of the diagnostics (for exact accumulation).

    Args:
      log_probs, old_log_probs, advantages, loss_mask: as ``per_token_objective``.
      weights: [batch, seq] from ``aggregation_weights`` (computed on the full batch).
      **objective_options: forwarded to ``per_token_objective``.

    Returns:
      scalar loss and a dict of scalar sums over active tokens: ``kl_sum``, ``clip_low_sum``, ``clip_high_sum``,
      ``clip_region_sum``, ``ratio_sum``, ``active_tokens``.
    """
    per_token, diagnostics = per_token_objective(log_probs, old_log_probs, advantages, loss_mask,
                                                 **objective_options)
    loss = jnp.sum(weights * per_token)
    mask = loss_mask.astype(jnp.float32)
    sums = {
        "kl_sum": jnp.sum(mask * diagnostics["kl"]),
        "clip_low_sum": jnp.sum(mask * diagnostics["is_low_clipped"]),
        "clip_high_sum": jnp.sum(mask * diagnostics["is_high_clipped"]),
        "clip_region_sum": jnp.sum(mask * diagnostics["is_region_clipped"]),
        "ratio_sum": jnp.sum(mask * diagnostics["ratio"]),
        "active_tokens": jnp.sum(mask),
    }
    return loss, sums


def grpo_loss(log_probs: jax.Array, old_log_probs: jax.Array, advantages: jax.Array, loss_mask: jax.Array,
              *, loss_type: str, max_completion_length: int = 1, **objective_options) -> jax.Array:
    """Full-batch convenience: the ``loss_type`` aggregate of ``per_token_objective`` (one micro-batch).

    Args as ``per_token_objective``; returns a scalar.
    """
    weights = aggregation_weights(loss_mask, loss_type, max_completion_length=max_completion_length)
    return aggregated_loss(log_probs, old_log_probs, advantages, loss_mask, weights, **objective_options)[0]
