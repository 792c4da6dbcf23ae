"""K-step self-improvement evaluation metrics over a correctness array (notes §4.1-4.3).

Every function takes ``correct``: a boolean (or 0/1) array of shape ``[problems, samples, K + 1]``
where ``correct[p, s, k]`` says whether sample ``s`` of problem ``p`` was correct after ``k``
improvement steps (k = 0 is the initial response). Pure NumPy, no state.
"""

from __future__ import annotations

import numpy as np


def _as_correctness(correct: np.ndarray) -> np.ndarray:
    array = np.asarray(correct)
    if array.ndim != 3:
        raise ValueError(f"correct must have shape [problems, samples, K+1], got {array.shape}")
    if array.size == 0:
        raise ValueError("correct is empty")
    return array.astype(bool)


def accuracy_at_each_k(correct: np.ndarray) -> np.ndarray:
    """Mean accuracy after k steps, for every k: shape ``[K + 1]``, values in [0, 1].

    Each problem weighs the same (mean over samples, then over problems), which for a full array
    equals the plain mean.
    """
    array = _as_correctness(correct)
    return array.mean(axis=1).mean(axis=0)


def avg_at_n(correct: np.ndarray, n: int, k: int = 0) -> float:
    """avg@n at step k: the accuracy of the first ``n`` samples of each problem, averaged over
    problems."""
    array = _as_correctness(correct)
    if not 1 <= n <= array.shape[1]:
        raise ValueError(f"n must be in [1, {array.shape[1]}], got {n}")
    return float(array[:, :n, k].mean(axis=1).mean())


def delta_k(correct: np.ndarray, k: int | None = None) -> float:
    """Δ_K: net change in accuracy, in percentage points, between the initial response and step K
    (last by default)."""
    accuracy = accuracy_at_each_k(correct)
    k = accuracy.shape[0] - 1 if k is None else k
    return float(100.0 * (accuracy[k] - accuracy[0]))


def net_corrections(correct: np.ndarray) -> np.ndarray:
    """Net corrections at each k: #(incorrect at 0 → correct at k) − #(correct at 0 → incorrect at
    k).

    Counted over all (problem, sample) pairs; shape ``[K + 1]`` of ints, always 0 at k = 0.
    """
    array = _as_correctness(correct)
    initial = array[:, :, :1]
    fixed = (~initial & array).sum(axis=(0, 1))
    broken = (initial & ~array).sum(axis=(0, 1))
    return (fixed - broken).astype(np.int64)
