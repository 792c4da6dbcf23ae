"""The multiplicative diversity bonus (notes §1.7): coefficients d_i that multiply GRPO advantages.

For a group of G response embeddings e_1..e_G with centroid e_bar and distances
r_i = ||e_i - e_bar||:

  * ``"range"`` (default, Eq. 6 as printed): d_i = r_i / (max_j r_j - min_j r_j). The numerator is
    not min-subtracted, so d_i can exceed 1 (and is large when the distances are nearly equal).
  * ``"minmax"`` (community variant): d_i = (r_i - min_j r_j) / (max_j r_j - min_j r_j), in [0, 1].
  * ``"mean"``: d_i = r_i / mean_j r_j (mean 1, so the advantages' overall scale is kept).

Guard: a group whose spread is ~0 gets d_i = 1 for all members, i.e. no bonus. That covers identical
embeddings, a group of one, and exact ties: G/2 copies of one response and G/2 of another (a 4-4 split of
two answers, common with short math answers and the groups with the largest reward variance) are all at the
same distance from the centroid. "~0" is relative to the largest embedding norm in the group: range <=
``range_eps`` * max_j ||e_j|| ("mean": mean_j r_j <= ``range_eps`` * max_j ||e_j||, or exactly 0). The
norm, not the largest distance, is the scale of float32 rounding: the centroid subtraction loses
precision relative to ||e||, so two tied answers whose embeddings are close (||e_A - e_B|| << ||e||) get a
rounding spread of up to ~1e-7 ||e|| (measured on random ties of 64 to 4,096 dimensions), which relative to
the largest distance reached ~1e-4. With a guard relative to the distance, those ties escaped it and got
d_i ~ 1e5 (session 6's math sweep); the default ``range_eps`` = 1e-5 sits two orders above that rounding.

The kernel runs under ``jax.shard_map`` over the mesh's batch axes ('data', and 'fsdp' when
present): the batch [B = P * G, D] has groups contiguous, and each shard holds whole groups, so no
communication is needed. When the number of groups does not split evenly over the shards (e.g. 4
prompts on 8 devices) every device computes the whole (tiny) batch instead.

Embeddings normally are the policy's own hidden states pooled over the response tokens
(``pool_hidden_states``, from the forward pass that computes log-probs); any callable
``texts -> [B, D]`` (an :class:`Embedder`) can replace them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from exit_jax.curriculum.config import CurriculumSettings
from exit_jax.sharding import BATCH_AXES, batch_shard_count

NORMALIZATIONS = ("range", "minmax", "mean")


@runtime_checkable
class Embedder(Protocol):
    """An external embedder: a batch of response texts -> [B, D] float embeddings."""

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


def embed_texts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Run an external embedder and check its output is a finite [len(texts), D] array."""
    embeddings = np.asarray(embedder(texts), dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
        raise ValueError(f"embedder returned shape {embeddings.shape}; expected [{len(texts)}, D]")
    return np.where(np.isfinite(embeddings), embeddings, 0.0)


def pool_hidden_states(hidden_states: jax.Array, response_mask: jax.Array) -> jax.Array:
    """Mean of hidden states over response tokens.

    Args:
      hidden_states: [B, T, D] final-layer hidden states from the log-prob forward pass.
      response_mask: [B, T] 1 on response tokens, 0 elsewhere.

    Returns:
      [B, D] float32 embeddings (zeros for a row without response tokens).
    """
    mask = response_mask.astype(jnp.float32)[..., None]
    total = jnp.sum(hidden_states.astype(jnp.float32) * mask, axis=1)
    return total / jnp.maximum(jnp.sum(mask, axis=1), 1.0)


def _tree_sum(values: jax.Array, axis: int) -> jax.Array:
    """Sum over ``axis`` as a fixed tree of elementwise adds (axis kept, size 1).

    A reduction's summation order depends on how XLA tiles it, which depends on the array's shape,
    so a plain ``jnp.sum`` gives results that differ in the last bits between 1 and 8 shards.
    Elementwise adds in a fixed tree are exact IEEE operations in a fixed order, so every layout
    gives bit-identical coefficients.
    """
    values = jnp.moveaxis(values, axis, -1)
    width = values.shape[-1]
    padded = 1 << max(0, (width - 1).bit_length())
    if padded != width:
        values = jnp.pad(values, [(0, 0)] * (values.ndim - 1) + [(0, padded - width)])
    while values.shape[-1] > 1:
        half = values.shape[-1] // 2
        values = values[..., :half] + values[..., half:]
    return jnp.moveaxis(values, -1, axis)


def _group_coefficients(embeddings: jax.Array, group_size: int, normalization: str,
                        range_eps: float) -> jax.Array:
    """[b, D] (whole groups) -> [b] coefficients; pure per-group maths, no communication."""
    groups = embeddings.astype(jnp.float32).reshape(-1, group_size, embeddings.shape[-1])
    centroid = _tree_sum(groups, axis=1) / group_size  # [n, 1, D]
    distances = jnp.sqrt(_tree_sum(jnp.square(groups - centroid), axis=-1)[..., 0])  # [n, G]
    largest = jnp.max(distances, axis=1, keepdims=True)
    smallest = jnp.min(distances, axis=1, keepdims=True)
    spread = largest - smallest
    squared_norms = _tree_sum(jnp.square(groups), axis=-1)[..., 0]  # [n, G]
    norm = jnp.sqrt(jnp.max(squared_norms, axis=1, keepdims=True))  # the scale of the rounding error
    if normalization == "mean":
        scale = _tree_sum(distances, axis=1) / group_size
        degenerate = (scale <= range_eps * norm) | (scale <= 0)
        coefficients = distances / jnp.where(degenerate, 1.0, scale)
    else:
        degenerate = spread <= range_eps * norm  # also true when every distance is 0
        numerator = distances - smallest if normalization == "minmax" else distances
        coefficients = numerator / jnp.where(degenerate, 1.0, spread)
    return jnp.where(degenerate, 1.0, coefficients).reshape(-1)


def mesh_batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh's batch axes ('data', 'fsdp') that exist, in order."""
    return tuple(axis for axis in BATCH_AXES if axis in mesh.axis_names)


@functools.lru_cache(maxsize=64)
def _compiled(mesh: Mesh | None, group_size: int, normalization: str, range_eps: float,
              sharded: bool):
    kernel = functools.partial(_group_coefficients, group_size=group_size,
                               normalization=normalization, range_eps=range_eps)
    if mesh is None:
        return jax.jit(kernel)
    axes = mesh_batch_axes(mesh)
    in_spec = PartitionSpec(axes, None) if sharded else PartitionSpec()
    out_spec = PartitionSpec(axes) if sharded else PartitionSpec()
    return jax.jit(jax.shard_map(kernel, mesh=mesh, in_specs=in_spec, out_specs=out_spec))


def diversity_coefficients(embeddings: jax.Array | np.ndarray, group_size: int,
                           mesh: Mesh | None = None, normalization: str = "range",
                           range_eps: float = 1e-5) -> jax.Array:
    """Diversity coefficients d of every rollout.

    Args:
      embeddings: [B, D] with B = num_prompts * group_size, each group's rollouts contiguous.
      group_size: G.
      mesh: mesh whose 'data' (and 'fsdp') axes shard the batch; None runs on the default device.
      normalization: "range" | "minmax" | "mean" (module docstring).
      range_eps: guard: a group whose spread is at most range_eps x its largest embedding norm counts as
        having none (d = 1).

    Returns:
      [B] float32 coefficients (sharded like the batch when the groups split evenly over the
      shards).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"diversity_normalization: unknown {normalization!r}; "
                         f"choose one of {NORMALIZATIONS}")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {embeddings.shape}")
    if group_size < 1 or embeddings.shape[0] % group_size:
        raise ValueError(f"batch {embeddings.shape[0]} is not a whole number of groups "
                         f"of {group_size}")
    sharded = False
    if mesh is not None:
        shards = batch_shard_count(mesh)
        sharded = bool(mesh_batch_axes(mesh)) and (embeddings.shape[0] // group_size) % shards == 0
    return _compiled(mesh, group_size, normalization, float(range_eps), sharded)(embeddings)


def apply_diversity_bonus(advantages: jax.Array, coefficients: jax.Array) -> jax.Array:
    """A_i <- d_i * A_i (Eq. 3). Advantages [B] or [B, T] (d broadcast over T); d is [B]."""
    coefficients = coefficients.astype(advantages.dtype)
    return advantages * coefficients.reshape(coefficients.shape + (1,) * (advantages.ndim - 1))


def diversity_bonus(advantages: jax.Array, embeddings: jax.Array | np.ndarray, group_size: int,
                    settings: CurriculumSettings, mesh: Mesh | None = None) -> jax.Array:
    """Trainer entry point: advantages [B] (or [B, T]) times d when the bonus is on, else as is.

    Args:
      advantages: group-relative advantages, groups contiguous.
      embeddings: [B, D] response embeddings (pooled hidden states or an external embedder's).
      group_size: G.
      settings: ``diversity_bonus``, ``diversity_normalization``, ``diversity_range_eps``.
      mesh: the training mesh (batch over 'data' / 'fsdp').
    """
    if not settings.diversity_bonus:
        return advantages
    coefficients = diversity_coefficients(embeddings, group_size, mesh=mesh,
                                          normalization=settings.diversity_normalization,
                                          range_eps=settings.diversity_range_eps)
    return apply_diversity_bonus(advantages, coefficients)
