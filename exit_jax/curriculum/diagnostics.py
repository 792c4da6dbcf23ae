"""Per-iteration curriculum diagnostics (notes §4.3: emergent curriculum, task diversity, Tables 2/7).

``iteration_diagnostics`` returns a flat dict of floats for the metrics logger:
  * buffer/size, buffer/score_mean, buffer/score_max, buffer/score_min;
  * batch/replay_fraction, batch/divergence_fraction (share of all prompt slots in diverge mode),
    batch/improve_fraction, batch/debug_fraction;
  * batch/mean_iterate (self-iteration depth k of the batch's instances), batch/mean_depth (lineage
    depth), batch/mean_start_turn (all slots) and batch/mean_start_turn_replayed (replayed slots
    only; NaN when none);
  * curriculum/distinct_trained: distinct instances (by content) trained on so far;
  * batch/pairwise_cosine and batch/pairwise_l2: mean pairwise distance of the batch's training
    instances' embeddings (cosine distance 1 - cos, and Euclidean distance of the embeddings as
    given), when embeddings are passed.
"""

from __future__ import annotations

import numpy as np

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.selection import MODE_CODE, Selection


def mean_pairwise_distances(embeddings: np.ndarray) -> tuple[float, float]:
    """Mean over pairs i < j of the cosine distance and of the L2 distance.

    Args:
      embeddings: [n, D]; fewer than two rows gives (0, 0).

    Returns:
      (mean cosine distance, mean L2 distance).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    count = embeddings.shape[0]
    if count < 2:
        return 0.0, 0.0
    norms = np.linalg.norm(embeddings, axis=1)
    unit = embeddings / np.maximum(norms, 1e-12)[:, None]
    cosine = 1.0 - unit @ unit.T
    squared = norms[:, None] ** 2 + norms[None, :] ** 2 - 2.0 * embeddings @ embeddings.T
    l2 = np.sqrt(np.maximum(squared, 0.0))
    upper = np.triu_indices(count, k=1)
    return float(cosine[upper].mean()), float(l2[upper].mean())


def iteration_diagnostics(buffer: TaskBuffer | None, selection: Selection,
                          instance_embeddings: np.ndarray | None = None) -> dict[str, float]:
    """The curriculum's metrics for one iteration (see module docstring)."""
    modes = selection.modes
    replayed = selection.from_buffer
    turns = np.array([inst.turn for inst in selection.instances], dtype=np.float64)
    out = {
        "batch/replay_fraction": float(replayed.mean()),
        "batch/divergence_fraction": float((modes == MODE_CODE["diverge"]).mean()),
        "batch/improve_fraction": float((modes == MODE_CODE["improve"]).mean()),
        "batch/debug_fraction": float((modes == MODE_CODE["debug"]).mean()),
        "batch/mean_iterate": float(np.mean([inst.iterate for inst in selection.instances])),
        "batch/mean_depth": float(np.mean([inst.depth for inst in selection.instances])),
        "batch/mean_start_turn": float(turns.mean()),
        "batch/mean_start_turn_replayed": (float(turns[replayed].mean()) if replayed.any()
                                           else float("nan")),
    }
    if buffer is not None:
        scores = buffer.scores[: buffer.size]
        out.update({
            "buffer/size": float(buffer.size),
            "buffer/score_mean": float(scores.mean()) if buffer.size else 0.0,
            "buffer/score_max": float(scores.max()) if buffer.size else 0.0,
            "buffer/score_min": float(scores.min()) if buffer.size else 0.0,
            "curriculum/distinct_trained": float(len(buffer.trained_keys)),
        })
    if instance_embeddings is not None:
        cosine, l2 = mean_pairwise_distances(instance_embeddings)
        out["batch/pairwise_cosine"] = cosine
        out["batch/pairwise_l2"] = l2
    return out
