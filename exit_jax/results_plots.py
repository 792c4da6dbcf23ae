"""The PNG figures of the results page (``exit_jax.results``): score vs k per rung, per task, and training curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exit_jax import sweep
from exit_jax.report import new_figure

if TYPE_CHECKING:
    from exit_jax.results import Group


def metric_series(history: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> np.ndarray:
    """The finite values of the first of ``keys`` that the history logs, in step order."""
    for key in keys:
        values = [record[key] for record in history if key in record and record[key] is not None]
        values = [float(value) for value in values if math.isfinite(value)]
        if values:
            return np.asarray(values, np.float64)
    return np.zeros(0)


DEPTH_KEYS = ("batch/mean_iterate", "batch/mean_depth")  # the self-iteration depth, then the lineage depth


def plot_scores(groups: Mapping[str, Group], ceilings: Mapping[str, float], tasks: Sequence[str], path: Path,
                 title: str) -> Path:
    figure = new_figure(7.5, 4.8)
    axes = figure.add_subplot()
    for index, group in enumerate(groups.values()):
        if not group.evaluated:
            continue
        ks = np.arange(group.curves.shape[1])
        mean = group.curves.mean(axis=0)
        axes.plot(ks, mean, color=f"C{index % 10}", marker="o", markersize=3, linewidth=1.8,
                  label=f"{group.name} (n={len(group.evaluated)})")
        if len(group.evaluated) > 1:
            std = group.curves.std(axis=0, ddof=1)
            axes.fill_between(ks, mean - std, mean + std, color=f"C{index % 10}", alpha=0.15, linewidth=0)
    if tasks and all(task in ceilings for task in tasks):
        axes.axhline(float(np.mean([ceilings[task] for task in tasks])), color="black", linestyle="--", linewidth=1,
                     label="ceiling (mean of the tasks' best known scores)")
    axes.set_xlabel("self-improvement step k")
    axes.set_ylabel("held-out normalised score (mean over tasks)")
    axes.set_title(f"{title}: score vs k (band: ± std over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_tasks(groups: Mapping[str, Group], ceilings: Mapping[str, float], tasks: Sequence[str], K: int,
                path: Path) -> Path:
    columns = min(3, len(tasks))
    rows = math.ceil(len(tasks) / columns)
    figure = new_figure(4.2 * columns, 3.0 * rows)
    for position, task in enumerate(tasks):
        axes = figure.add_subplot(rows, columns, position + 1)
        for index, group in enumerate(groups.values()):
            curves = [member.result["per_task"][task][: K + 1] for member in group.evaluated
                      if task in (member.result.get("per_task") or {})]
            if curves:
                axes.plot(range(K + 1), np.mean(np.asarray(curves, np.float64), axis=0), color=f"C{index % 10}",
                          linewidth=1.2, label=group.label)
        if task in ceilings:
            axes.axhline(ceilings[task], color="black", linestyle="--", linewidth=0.8, label="ceiling")
        axes.set_title(task, fontsize=9)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        if position == 0:
            axes.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_training(groups: Mapping[str, Group], path: Path) -> Path | None:
    panels = (("training reward", sweep.REWARD_KEYS), ("self-iteration depth", DEPTH_KEYS),
              ("distinct instances trained", ("curriculum/distinct_trained",)),
              ("batch pairwise cosine distance", ("batch/pairwise_cosine",)))
    if not any(metric_series(member.history, keys).size for group in groups.values() for member in group.members
               for _, keys in panels):
        return None
    figure = new_figure(12, 3.2)
    for position, (title, keys) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), position + 1)
        for index, group in enumerate(groups.values()):
            series = [values for member in group.members if (values := metric_series(member.history, keys)).size]
            if series:
                length = min(len(values) for values in series)
                axes.plot(np.mean([values[:length] for values in series], axis=0), color=f"C{index % 10}",
                          linewidth=1.0, label=group.label)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("iteration (mean over seeds)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    next(axes for axes in figure.axes if axes.lines).legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    return path
