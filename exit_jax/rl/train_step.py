"""The sharded, micro-batched GRPO train step: one jitted function of ``(params, opt_state, rest, batch)``.

The model is kept as ``nnx.split(model, nnx.Param, ...)`` = ``(graphdef, params, rest)``; ``params`` and the optax
state are donated and come back with the same NamedShardings (FSDP / tensor parallel from the model's logical-axis
rules, ``exit_jax.sharding``). Inside the step a ``lax.scan`` runs the micro-batches and *sums* their gradients; the
per-token aggregation weights are computed once on the whole batch beforehand (``losses.aggregation_weights``), so
the summed gradient equals the full-batch gradient for every loss type. Nothing leaves the device inside the step.

Batch (a dict of arrays, leading dimension = batch, rows of one GRPO group contiguous):

| key | shape, dtype | meaning |
|---|---|---|
| ``tokens`` | [B, T] int32 | prompt + completion (any padding side) |
| ``positions`` | [B, T] int32 | rotary position of each token within its own sequence |
| ``attention_mask`` | [B, T] bool | True on real tokens |
| ``loss_mask`` | [B, T] bool | True on trained (assistant / completion) tokens; column 0 must be False |
| ``advantages`` | [B] f32 | per-sequence advantages (already multiplied by any diversity bonus) |
| ``old_log_probs`` | [B, T] f32, optional | log-probs of the sampling policy; absent -> current policy (mu = 1) |
| ``ref_log_probs`` | [B, T] f32, needed iff beta > 0 | reference-policy log-probs |
| ``truncated`` | [B] bool, optional | completions that hit the length limit (``mask_truncated_completions``) |
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from exit_jax.rl import losses
from exit_jax.sharding import batch_shard_count

Batch = dict[str, jax.Array]
MODEL_INPUTS = ("tokens", "positions", "attention_mask")


def mesh_context(mesh: Mesh | None):
    """``jax.set_mesh(mesh)`` (so the model's activation constraints apply), or a no-op without a mesh."""
    return jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext()


def split_microbatches(x: jax.Array, num_microbatches: int, block: int = 1) -> jax.Array:
    """[B, ...] -> [M, B // M, ...]: the rows are cut into blocks of ``block`` consecutive rows and block ``j`` goes
    to micro-batch ``j % M`` (so with ``block = 1`` row ``i`` is in micro-batch ``i % M``).

    Interleaving (rather than one contiguous run per micro-batch) keeps every micro-batch spread over all data
    shards: a batch sharded in contiguous blocks over the data axes reshapes to ``[B // (M * block), M, block]``
    without communication. Shared-prefix steps use blocks of whole GRPO groups (``B // (M * data shards)`` rows).
    """
    batch = x.shape[0]
    if batch % (num_microbatches * block):
        raise ValueError(f"batch of {batch} rows does not split into {num_microbatches} micro-batches of blocks of "
                         f"{block} rows")
    blocks = x.reshape(batch // (num_microbatches * block), num_microbatches, block, *x.shape[1:])
    return jnp.swapaxes(blocks, 0, 1).reshape(num_microbatches, batch // num_microbatches, *x.shape[1:])


def merge_microbatches(x: jax.Array, block: int = 1) -> jax.Array:
    """Inverse of ``split_microbatches``: [M, B // M, ...] -> [B, ...]."""
    micro, rows = x.shape[:2]
    blocks = x.reshape(micro, rows // block, block, *x.shape[2:])
    return jnp.swapaxes(blocks, 0, 1).reshape(micro * rows, *x.shape[2:])


def policy_log_probs(graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State, batch: Batch,
                     with_entropy: bool = False, loss_start: int = 0, prefix_length: int = 0,
                     group_size: int = 1) -> tuple[jax.Array, jax.Array | None]:
    """Forward the model and return per-token log-probs [B, T] (and entropies [B, T]) aligned with ``tokens``.

    ``loss_start`` (static): columns before it are known to carry no loss, so the vocabulary projection runs only
    for positions ``loss_start - 1 ..`` and those columns come back as 0 (as column 0 always does).

    ``prefix_length`` (static, with ``group_size`` G): the first ``prefix_length`` columns (tokens, positions and
    mask) are known to be identical within each run of G consecutive rows, i.e. every GRPO group shares its prompt.
    The prefix is then run once per group, its KV cache repeated G times, and the rest of each row attends to it
    (``_shared_prefix_logits``): the same log-probs, with the prompt's share of the work divided by G.
    """
    model = nnx.merge(graphdef, params, rest)
    logits_from = max(loss_start - 1, 0)
    if prefix_length:
        logits = _shared_prefix_logits(model, batch, prefix_length, group_size, logits_from)
    else:
        outputs = model(batch["tokens"], batch["positions"], batch["attention_mask"], logits_from=logits_from)
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
    log_probs, entropy = losses.token_log_probs_and_entropy(logits, batch["tokens"][:, logits_from:], with_entropy)
    if logits_from:
        pad = ((0, 0), (logits_from, 0))
        log_probs = jnp.pad(log_probs, pad)
        entropy = None if entropy is None else jnp.pad(entropy, pad)
    return log_probs, entropy


def _shared_prefix_logits(model, batch: Batch, prefix_length: int, group_size: int, logits_from: int) -> jax.Array:
    """Logits for columns ``logits_from ..`` with the first ``prefix_length`` columns run once per group.

    The prefix of each group's first row fills a KV cache of the full row length; the cache is repeated to every
    row of the group (so the backward pass sums the rows' gradients into the shared prefix), and the remaining
    columns run as one chunk at cache slot ``prefix_length``, attending to the prefix and causally to themselves.
    """
    tokens, positions, mask = batch["tokens"], batch["positions"], batch["attention_mask"]
    rows, length = tokens.shape
    if rows % group_size or not 0 < prefix_length < length:
        raise ValueError(f"a shared prefix of {prefix_length} columns needs whole groups of {group_size} rows and "
                         f"a shorter prefix than the {length} columns")
    first = slice(None, None, group_size)
    cache = model.init_cache(rows // group_size, length)
    prefix_logits_from = min(logits_from, prefix_length - 1)
    prefix_logits, _, cache = model(tokens[first, :prefix_length], positions[first, :prefix_length],
                                    mask[first, :prefix_length], cache=cache, cache_index=0,
                                    logits_from=prefix_logits_from)
    cache = jax.tree.map(lambda c: jnp.repeat(c, group_size, axis=0), cache)
    suffix_logits, _, _ = model(tokens[:, prefix_length:], positions[:, prefix_length:], mask[:, prefix_length:],
                                cache=cache, cache_index=prefix_length,
                                logits_from=max(logits_from - prefix_length, 0))
    if logits_from >= prefix_length:
        return suffix_logits
    return jnp.concatenate([jnp.repeat(prefix_logits, group_size, axis=0), suffix_logits], axis=1)


def make_log_prob_fn(graphdef: nnx.GraphDef, num_microbatches: int) -> Callable[..., jax.Array]:
    """Jitted ``(params, rest, batch, loss_start=0) -> log_probs [B, T]`` for old / reference log-probs,
    micro-batched (``loss_start`` static, as in ``policy_log_probs``)."""

    def compute(params: nnx.State, rest: nnx.State, batch: Batch, loss_start: int = 0) -> jax.Array:
        inputs = {k: split_microbatches(batch[k], num_microbatches) for k in MODEL_INPUTS}
        per_micro = jax.lax.map(lambda mb: policy_log_probs(graphdef, params, rest, mb, False, loss_start)[0],
                                inputs)
        return merge_microbatches(per_micro)

    return jax.jit(compute, static_argnames=("loss_start",))


def make_optimizer(config) -> optax.GradientTransformation:
    """AdamW with linear warmup then a constant or cosine schedule, after global-norm gradient clipping.

    Weight decay applies to matrices only (ndim >= 2), not to norm scales or biases, as in HF's trainer.
    """
    lr = config.learning_rate
    warmup = int(config.warmup_steps)
    if config.lr_schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1) if warmup else 0,
                                                      int(config.num_train_steps), end_value=0.0)
    elif warmup:
        schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
                                        [warmup])
    else:
        schedule = optax.constant_schedule(lr)
    chain = []
    if config.max_grad_norm:
        chain.append(optax.clip_by_global_norm(config.max_grad_norm))
    chain.append(optax.adamw(schedule, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps,
                             weight_decay=config.weight_decay,
                             mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)))
    return optax.chain(*chain)


def _objective_options(config) -> dict[str, Any]:
    return dict(epsilon=config.epsilon, epsilon_high=config.epsilon_high,
                importance_sampling_level=config.importance_sampling_level, beta=config.beta)


def make_loss_and_grad_fn(graphdef: nnx.GraphDef, config, num_microbatches: int, data_shards: int = 1
                          ) -> Callable[..., tuple[nnx.State, dict[str, jax.Array]]]:
    """``(params, rest, batch, loss_start=0, prefix_length=0) -> (summed gradient, metric sums)``: the micro-batched
    core of the train step (``loss_start`` static: no ``loss_mask`` column before it is True; ``prefix_length``
    static: columns every GRPO group shares, see ``policy_log_probs``).

    With a shared prefix, micro-batches are made of blocks of ``B // (M * data_shards)`` consecutive rows, which must
    hold whole groups; otherwise rows are interleaved (``split_microbatches``). Exposed separately so tests can
    compare the micro-batched gradient with the full-batch one.
    """
    options = _objective_options(config)
    with_entropy = bool(config.compute_entropy)
    group = int(config.num_generations)

    def micro_loss(params, rest, micro, loss_start=0, prefix_length=0):
        log_probs, entropy = policy_log_probs(graphdef, params, rest, micro, with_entropy, loss_start,
                                              prefix_length, group)
        old = micro.get("old_log_probs", jax.lax.stop_gradient(log_probs))
        loss, sums = losses.aggregated_loss(log_probs, old, micro["advantages"], micro["loss_mask"],
                                            micro["weights"], ref_log_probs=micro.get("ref_log_probs"),
                                            **options)
        sums["loss"] = loss
        mask = micro["loss_mask"].astype(jnp.float32)
        sums["entropy_sum"] = jnp.sum(mask * entropy) if with_entropy else jnp.zeros(())
        return loss, sums

    def loss_and_grad(params, rest, batch, loss_start=0, prefix_length=0):
        mask = batch["loss_mask"].astype(bool)
        if config.mask_truncated_completions and "truncated" in batch:
            mask = mask & ~batch["truncated"].astype(bool)[:, None]
        block = shared_prefix_block(mask.shape[0], num_microbatches, data_shards, group) if prefix_length else 1
        if not block:
            raise ValueError(f"a shared prefix needs micro-batches of whole groups: {mask.shape[0]} rows, "
                             f"{num_microbatches} micro-batches, {data_shards} data shards, groups of {group}")
        weights = losses.aggregation_weights(mask, config.loss_type,
                                             max_completion_length=config.max_completion_length,
                                             num_microbatches=num_microbatches, block=block)
        keys = list(MODEL_INPUTS) + ["advantages", "old_log_probs", "ref_log_probs"]
        full = {k: batch[k] for k in keys if k in batch and batch[k] is not None}
        if config.beta > 0 and "ref_log_probs" not in full:
            raise ValueError("beta > 0 needs batch['ref_log_probs']")
        full["loss_mask"], full["weights"] = mask, weights
        micro_batches = {k: split_microbatches(v, num_microbatches, block) for k, v in full.items()}
        grad_fn = jax.grad(micro_loss, has_aux=True)

        def body(carry, micro):
            grad_sum, metric_sum = carry
            grads, sums = grad_fn(params, rest, micro, loss_start, prefix_length)
            return (jax.tree.map(jnp.add, grad_sum, grads), jax.tree.map(jnp.add, metric_sum, sums)), None

        zero_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
        zero_sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                 jax.eval_shape(lambda: micro_loss(
                                     params, rest, jax.tree.map(lambda v: v[0], micro_batches))[1]))
        (grads, sums), _ = jax.lax.scan(body, (zero_grads, zero_sums), micro_batches)
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
        return grads, sums

    return loss_and_grad


def shared_prefix_block(batch_size: int, num_microbatches: int, data_shards: int, group_size: int) -> int:
    """Rows per micro-batch block when the prefix is shared (``split_microbatches``): ``B // (M * data shards)``
    if that splits evenly into whole groups of ``group_size`` rows, else 0 (the prefix cannot be shared)."""
    parts = num_microbatches * data_shards
    if batch_size % parts or (batch_size // parts) % group_size:
        return 0
    return batch_size // parts


def _metrics(sums: dict[str, jax.Array], grad_norm: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    active = jnp.maximum(sums["active_tokens"], 1.0)
    advantages = batch["advantages"].astype(jnp.float32)
    return {
        "loss": sums["loss"],
        "kl": sums["kl_sum"] / active,
        "entropy": sums["entropy_sum"] / active,
        "clip_ratio/low_mean": sums["clip_low_sum"] / active,
        "clip_ratio/high_mean": sums["clip_high_sum"] / active,
        "clip_ratio/region_mean": sums["clip_region_sum"] / active,
        "importance_ratio/mean": sums["ratio_sum"] / active,
        "num_tokens": sums["active_tokens"],
        "grad_norm": grad_norm,
        "advantages/mean": advantages.mean(),
        "advantages/std": advantages.std(),
    }


def make_train_step(graphdef: nnx.GraphDef, config, optimizer: optax.GradientTransformation, *,
                    num_microbatches: int = 1, mesh: Mesh | None = None, params_sharding: Any = None,
                    opt_state_sharding: Any = None) -> Callable[..., tuple[nnx.State, Any, dict]]:
    """Builds the jitted GRPO step ``(params, opt_state, rest, batch) -> (params, opt_state, metrics)``.

    Args:
      graphdef: from ``nnx.split(model, nnx.Param, ...)``.
      config: a validated GRPO config (``exit_jax.rl.config``).
      optimizer: usually ``make_optimizer(config)``.
      num_microbatches: M; the batch must divide into M micro-batches.
      mesh: the (data, fsdp, tensor) mesh, or None for one device.
      params_sharding, opt_state_sharding: trees of NamedShardings; outputs keep them (params and opt_state are
        donated, so they are updated in place).

    Returns:
      The jitted step. ``metrics`` holds device scalars with TRL-like names (see ``_metrics``).
    """
    data_shards = batch_shard_count(mesh)
    loss_and_grad = make_loss_and_grad_fn(graphdef, config, num_microbatches, data_shards)

    def step(params, opt_state, rest, batch, loss_start=0, prefix_length=0):
        grads, sums = loss_and_grad(params, rest, batch, loss_start, prefix_length)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, _metrics(sums, grad_norm, batch)

    out_shardings = None
    if mesh is not None and params_sharding is not None and opt_state_sharding is not None:
        out_shardings = (params_sharding, opt_state_sharding, NamedSharding(mesh, PartitionSpec()))
    jitted = jax.jit(step, donate_argnums=(0, 1), out_shardings=out_shardings,
                     static_argnames=("loss_start", "prefix_length"))

    def run(params, opt_state, rest, batch, loss_start: int = 0, prefix_length: int = 0):
        with mesh_context(mesh):
            return jitted(params, opt_state, rest, batch, loss_start=loss_start, prefix_length=prefix_length)

    run.jitted = jitted
    return run


def make_reference_update(alpha: float) -> Callable[[nnx.State, nnx.State], nnx.State]:
    """Jitted ``theta_ref <- alpha * theta + (1 - alpha) * theta_ref`` (the reference tree is donated)."""

    def mix(reference: nnx.State, params: nnx.State) -> nnx.State:
        return jax.tree.map(lambda r, p: (alpha * p.astype(jnp.float32) + (1.0 - alpha) * r.astype(jnp.float32)
                                          ).astype(r.dtype), reference, params)

    return jax.jit(mix, donate_argnums=(0,))
