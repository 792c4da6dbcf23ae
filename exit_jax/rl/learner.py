"""GRPOLearner: owns the policy parameters, optimizer state and reference policy; one ``update`` per rollout batch.

``update(batch)`` = (reference log-probs if ``beta > 0``) + (old log-probs if ``num_iterations > 1`` and the batch
has none) + ``num_iterations`` jitted train steps + the reference refresh every ``ref_update_interval`` iterations
(``theta_ref <- alpha * theta + (1 - alpha) * theta_ref``). With ``beta == 0`` no reference copy exists and no
reference forward runs. Metrics come back to the host once, at the end of ``update``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from exit_jax.rl import advantages as advantages_lib
from exit_jax.rl import train_step as step_lib
from exit_jax.rl.batch import shared_prefix_length, trim_padding
from exit_jax.rl.config import validate_config
from exit_jax.sharding import batch_shard_count


class GRPOLearner:
    """GRPO learner for an NNX policy whose call is ``model(tokens, positions, attention_mask) -> (logits, ...)``.

    Args:
      model: the policy; its parameters are taken over (split out) at construction.
      config: GRPO config (``exit_jax.rl.config.get_config()``), validated here.
      mesh: optional (data, fsdp, tensor) mesh; parameters are sharded by their logical axes.
    """

    def __init__(self, model: nnx.Module, config, mesh: Mesh | None = None):
        validate_config(config)
        self.config = config
        self.mesh = mesh
        self.graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        if mesh is not None:
            from exit_jax.sharding import shard_state

            params, rest = shard_state(params, mesh), shard_state(rest, mesh)
        self.params, self.rest = params, rest
        self.optimizer = step_lib.make_optimizer(config)
        with step_lib.mesh_context(mesh):
            self.opt_state = jax.jit(self.optimizer.init, out_shardings=self._opt_state_shardings(params))(params)
        self.num_microbatches = config.batch_size // (config.micro_batch_size or config.batch_size)
        sharding_of = lambda tree: jax.tree.map(lambda x: x.sharding, tree)
        self._train_step = step_lib.make_train_step(
            self.graphdef, config, self.optimizer, num_microbatches=self.num_microbatches, mesh=mesh,
            params_sharding=sharding_of(self.params) if mesh is not None else None,
            opt_state_sharding=sharding_of(self.opt_state) if mesh is not None else None)
        self._data_shards = batch_shard_count(mesh)
        self._log_probs = step_lib.make_log_prob_fn(self.graphdef, self.num_microbatches)
        self.ref_params = jax.tree.map(jnp.copy, params) if config.beta > 0 else None
        self._mix_reference = step_lib.make_reference_update(config.ref_update_alpha)
        self.iteration = 0

    # ------------------------------------------------------------------ helpers
    def _opt_state_shardings(self, params: nnx.State):
        """Adam moments sharded like the parameters they track; counters replicated (None without a mesh)."""
        if self.mesh is None:
            return None
        replicated = NamedSharding(self.mesh, PartitionSpec())
        abstract = jax.eval_shape(self.optimizer.init, params)
        param_shardings = jax.tree.map(lambda x: x.sharding, params)
        return optax.tree_utils.tree_map_params(
            self.optimizer, lambda _, sharding: sharding, abstract, param_shardings,
            transform_non_params=lambda _: replicated)

    def policy_state(self) -> nnx.State:
        """The full model state (params + any other variables), e.g. for ``Sampler.sample``."""
        return nnx.merge_state(self.params, self.rest)

    def model(self) -> nnx.Module:
        """A fresh module view of the current parameters."""
        return nnx.merge(self.graphdef, self.params, self.rest)

    def reset_optimizer(self, params: nnx.State | None = None) -> None:
        """Replace the parameters (optional) and start a fresh optimizer state, sharded like the parameters.

        Use after a warm start (e.g. a supervised phase) instead of ``jax.jit(optimizer.init)``, which would leave the
        Adam moments replicated on a mesh. The reference policy, if any, restarts from the new parameters.
        """
        if params is not None:
            self.params = params
        with step_lib.mesh_context(self.mesh):
            self.opt_state = jax.jit(self.optimizer.init,
                                     out_shardings=self._opt_state_shardings(self.params))(self.params)
        if self.ref_params is not None:
            self.ref_params = jax.tree.map(jnp.copy, self.params)

    def advantages(self, rewards, multiplier=None) -> jax.Array:
        """[batch] rewards (groups contiguous) -> [batch] advantages with the config's estimator and scaling."""
        return advantages_lib.config_advantages(jnp.asarray(rewards, jnp.float32), self.config,
                                                None if multiplier is None else jnp.asarray(multiplier))

    def _device_batch(self, batch: dict) -> dict:
        if batch["tokens"].shape[0] != self.config.batch_size:
            raise ValueError(f"batch has {batch['tokens'].shape[0]} rows; config.batch_size is "
                             f"{self.config.batch_size}")
        if self.mesh is None:
            return {k: jnp.asarray(v) for k, v in batch.items()}
        from exit_jax.sharding import BATCH_AXES, global_array

        def put(v):
            v = np.asarray(v) if not isinstance(v, jax.Array) else v
            return global_array(v, NamedSharding(self.mesh, PartitionSpec(BATCH_AXES, *[None] * (v.ndim - 1))))

        return {k: put(v) for k, v in batch.items()}

    # ------------------------------------------------------------------ the update
    def update(self, batch: dict, rewards=None) -> dict[str, float]:
        """One GRPO iteration on a rollout batch (the dict of ``train_step``'s docstring).

        Args:
          batch: the train batch (host or device arrays).
          rewards: optional [batch] rewards, only for the ``reward`` / ``reward_std`` / ``frac_reward_zero_std``
            metrics (the advantages in ``batch`` are what the loss uses).

        Returns host floats: the train-step metrics averaged over the ``num_iterations`` epochs, plus
        ``completions/mean_length`` and ``completions/max_length`` (trained tokens per row).

        Host batches are first cut to the columns that hold tokens (``batch.trim_padding``); the vocabulary
        projection runs only from the first trained column on; and when every group's rows share their leading
        columns (the prompt), those run once per group (``batch.shared_prefix_length``, ``share_prompt_prefix``).
        None of these changes the loss.
        """
        config = self.config
        loss_start = prefix_length = 0
        if all(isinstance(batch[k], np.ndarray) for k in ("tokens", "positions", "attention_mask", "loss_mask")):
            batch, loss_start = trim_padding(batch)
            if config.share_prompt_prefix and step_lib.shared_prefix_block(
                    config.batch_size, self.num_microbatches, self._data_shards, config.num_generations):
                prefix_length = shared_prefix_length(batch, config.num_generations)
        batch = self._device_batch(batch)
        with step_lib.mesh_context(self.mesh):
            if config.beta > 0:
                batch["ref_log_probs"] = self._log_probs(self.ref_params, self.rest, batch, loss_start=loss_start)
            if config.num_iterations > 1 and "old_log_probs" not in batch:
                batch["old_log_probs"] = self._log_probs(self.params, self.rest, batch, loss_start=loss_start)
        epoch_metrics = []
        for _ in range(config.num_iterations):
            self.params, self.opt_state, metrics = self._train_step(self.params, self.opt_state, self.rest,
                                                                    batch, loss_start, prefix_length)
            epoch_metrics.append(metrics)
        self.iteration += 1
        if (config.beta > 0 and config.ref_update_interval
                and self.iteration % config.ref_update_interval == 0):
            with step_lib.mesh_context(self.mesh):
                self.ref_params = self._mix_reference(self.ref_params, self.params)
        from exit_jax.sharding import host_value

        host = jax.tree.map(host_value, epoch_metrics)
        out = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        lengths = host_value(batch["loss_mask"]).sum(axis=1)
        out["completions/mean_length"] = float(lengths.mean())
        out["completions/max_length"] = float(lengths.max())
        if rewards is not None:
            reward_stats = advantages_lib.reward_metrics(jnp.asarray(rewards, jnp.float32), config.num_generations)
            out.update({k: float(v) for k, v in reward_stats.items()})
        return out
