"""Learnability scores S of GRPO groups (notes §1.5), computed on the host from quality scores.

S is a function of the G quality scores of one group (``Grade.score``, the final quality rescaled
to [0, 1]):
  * ``"variance"`` (default): population variance, ddof = 0. For binary outcomes it equals p(1 - p),
    so the paper's generalisation of "No Regrets" learnability is exact; S is in [0, 0.25]
    (Popoviciu's bound).
  * ``"std"``: population standard deviation, in [0, 0.5]; less peaked at the top than the variance.
  * ``"binary"``: p(1 - p) with p the fraction of rollouts whose quality is >=
    ``success_threshold``; in [0, 0.25].

Quality values are sanitised first: NaN and +-inf count as 0 (a failed rollout) and values are
clipped to [0, 1], so a broken grader can never make S leave its range or poison the softmax.
"""

from __future__ import annotations

import numpy as np

SCORE_MAX = {"variance": 0.25, "std": 0.5, "binary": 0.25}


def sanitize_quality(quality: np.ndarray) -> np.ndarray:
    """NaN / inf -> 0, then clip to [0, 1]. Returns float64."""
    quality = np.asarray(quality, dtype=np.float64)
    quality = np.where(np.isfinite(quality), quality, 0.0)
    return np.clip(quality, 0.0, 1.0)


def learnability_scores(quality: np.ndarray, score_fn: str = "variance",
                        success_threshold: float = 0.5) -> np.ndarray:
    """Learnability score of each group.

    Args:
      quality: [num_groups, group_size] quality scores (rescaled to [0, 1]).
      score_fn: "variance" | "std" | "binary".
      success_threshold: threshold for "binary".

    Returns:
      [num_groups] float64 scores.
    """
    quality = sanitize_quality(quality)
    if quality.ndim != 2 or quality.shape[1] == 0:
        raise ValueError(f"quality must be [num_groups, group_size>0], got shape {quality.shape}")
    # The clips only absorb floating-point rounding past the analytic bounds.
    if score_fn == "variance":
        return np.clip(quality.var(axis=1), 0.0, SCORE_MAX["variance"])
    if score_fn == "std":
        return np.clip(quality.std(axis=1), 0.0, SCORE_MAX["std"])
    if score_fn == "binary":
        solved = (quality >= success_threshold).mean(axis=1)
        return solved * (1.0 - solved)
    raise ValueError(f"score_fn: unknown {score_fn!r}; choose variance, std or binary")
