"""The ExIt curriculum: task-space buffer, selection of self-iteration instances, diversity bonus,
method ladder.

Host side (NumPy): ``TaskBuffer`` (buffer.py), ``select_batch`` / ``update_buffer`` (selection.py),
learnability scores (scores.py), diagnostics (diagnostics.py), multi-host hand-off (multihost.py).
Device side (JAX): the diversity-bonus kernel (diversity.py). Configuration and the grpo /
curriculum / improve / diverge / exit ladder: config.py. Design choices where the paper is silent:
docs/curriculum.md.
"""

from exit_jax.curriculum.buffer import TaskBuffer, replay_distribution
from exit_jax.curriculum.config import (
    METHODS,
    CurriculumSettings,
    get_config,
    method_components,
    settings_from_config,
)
from exit_jax.curriculum.diagnostics import iteration_diagnostics, mean_pairwise_distances
from exit_jax.curriculum.scores import learnability_scores
from exit_jax.curriculum.selection import Selection, select_batch, update_buffer

__all__ = [
    "METHODS",
    "CurriculumSettings",
    "Selection",
    "TaskBuffer",
    "get_config",
    "iteration_diagnostics",
    "learnability_scores",
    "mean_pairwise_distances",
    "method_components",
    "replay_distribution",
    "select_batch",
    "settings_from_config",
    "update_buffer",
]
