"""Tool-use evaluation metrics: first-turn accuracy and total return (notes §3.2, §4.1).

``episode_metrics`` summarises a batch of episodes. For the K-step curves, run the held-out tasks
once per k with ``ToolUseDomain.with_config(improve_steps=k)``, stack ``first_turn_correct`` into a
``[tasks, samples, K + 1]`` array and use the shared functions re-exported here (accuracy at each k,
avg@n, Δ_K, net corrections); they do not depend on the domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exit_jax.domains.math.metrics import accuracy_at_each_k, avg_at_n, delta_k, net_corrections
from exit_jax.types import Episode

__all__ = [
    "accuracy_at_each_k",
    "avg_at_n",
    "correctness_array",
    "delta_k",
    "episode_metrics",
    "net_corrections",
]


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Means over episodes: first-turn accuracy, total return, all-requests accuracy, valid-action
    rate."""
    if not episodes:
        raise ValueError("episode_metrics needs at least one episode")
    infos = [episode.grade.info for episode in episodes]
    return {
        "first_turn_accuracy": float(np.mean([info["first_turn_correct"] for info in infos])),
        "total_return": float(np.mean([info["total_return"] for info in infos])),
        "all_requests_accuracy": float(np.mean([info["all_requests_correct"] for info in infos])),
        "valid_action_rate": float(np.mean([episode.has_valid_action for episode in episodes])),
    }


def correctness_array(
    episodes_per_k: Sequence[Sequence[Episode]], samples: int, key: str = "first_turn_correct"
) -> np.ndarray:
    """``[tasks, samples, K + 1]`` booleans from one list of episodes per k.

    Args:
      episodes_per_k: for each k, the episodes of every task's samples, task-major (task 0's
        ``samples`` episodes first), the same order for every k.
      samples: episodes per task.
      key: the ``Grade.info`` flag to collect.
    """
    columns = []
    for episodes in episodes_per_k:
        if len(episodes) % samples:
            raise ValueError(f"{len(episodes)} episodes do not split into groups of {samples}")
        flags = np.array([bool(episode.grade.info[key]) for episode in episodes])
        columns.append(flags.reshape(-1, samples))
    return np.stack(columns, axis=-1)
