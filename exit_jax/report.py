"""A run's human-readable report: ``<workdir>/report.md`` and PNG plots in ``<workdir>/plots/``.

Host-only (no JAX); matplotlib draws through the Agg canvas directly, so no display or global backend is touched.

Inputs are plain data:
  * ``history``: ``metrics.jsonl`` records, ``[{"step": int, name: float, ...}, ...]``.
  * ``eval_results``: one dict per evaluation (also ``<workdir>/eval/step_<N>.json``)::

      {"step": int, "domain": str, "K": int, "k": [0..K], "mean": [K+1], "std": [K+1] (optional),
       "per_task": {task_id: [K+1]}, "ceiling": {task_id: float} (optional), "delta_K": float,
       "net_corrections": [K+1] or None, "avg_at_n": int}

  * ``buffer_snapshot``: ``{"depth": [...], "score": [...], "id": [...], "parent_id": [... or -1], "turn": [...]}``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
TABLE_KS = (0, 1, 2, 4, 8, 16)

# Training-curve panels: (title, metric names). A history key matches a name when it equals it or ends in
# "/<name>", so "train/reward" feeds the reward panel. Panels with no matching key are left out.
TRAINING_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward", ("reward", "reward_mean")),
    ("loss", ("loss",)),
    ("KL to reference", ("kl",)),
    ("entropy", ("entropy",)),
    ("groups with zero reward std", ("frac_reward_zero_std",)),
    ("buffer size", ("buffer/size",)),
    ("buffer score", ("buffer/score_mean", "buffer/score_max", "buffer/score_min")),
    ("batch composition", ("batch/replay_fraction", "batch/divergence_fraction", "batch/improve_fraction",
                           "batch/debug_fraction")),
    ("self-iteration depth", ("batch/mean_depth", "batch/mean_iterate")),
    ("grad norm", ("grad_norm",)),
)


def new_figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas (no pyplot state, safe off the main thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def format_number(value: Any, digits: int = 4) -> str:
    """Fixed-point text for tables; ``–`` for missing values, ``nan`` for NaN."""
    if value is None:
        return "–"
    number = float(value)
    return "nan" if math.isnan(number) else f"{number:.{digits}f}"


def load_eval_results(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every ``<workdir>/eval/*.json`` evaluation, sorted by its ``step``; unreadable files are skipped."""
    results = []
    for path in sorted(Path(workdir, "eval").glob("*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(result, dict) and isinstance(result.get("mean"), list):
            step = result.get("step")
            if not isinstance(step, int):
                match = re.search(r"(\d+)", path.stem)
                step = int(match.group(1)) if match else -1
            results.append({**result, "step": step})
    return sorted(results, key=lambda result: result["step"])


def eval_ks(result: Mapping[str, Any]) -> list[int]:
    """The k values of an evaluation (``result["k"]``, or ``0..len(mean)-1``)."""
    ks = result.get("k")
    return [int(k) for k in ks] if ks else list(range(len(result["mean"])))


def table_ks(ks: Sequence[int]) -> list[int]:
    """The k columns shown in tables: 0, 1, 2, 4, 8, 16 where present, plus the last k."""
    shown = [k for k in TABLE_KS if k in ks]
    if ks and ks[-1] not in shown:
        shown.append(ks[-1])
    return shown


def final_table(result: Mapping[str, Any]) -> str:
    """Markdown table of one evaluation: a row per task and the mean, columns k and Δ_K (score at K minus at 0)."""
    ks = eval_ks(result)
    shown = table_ks(ks)
    header = "| task | " + " | ".join(f"k={k}" for k in shown) + " | Δ_K |"
    rows = [header, "|" + "---|" * (len(shown) + 2)]
    for task_id, scores in sorted((result.get("per_task") or {}).items(), key=lambda item: str(item[0])):
        cells = [format_number(scores[ks.index(k)]) if ks.index(k) < len(scores) else "–" for k in shown]
        delta = scores[-1] - scores[0] if len(scores) and None not in (scores[0], scores[-1]) else None
        rows.append(f"| {task_id} | " + " | ".join(cells) + f" | {format_number(delta)} |")
    std = result.get("std")
    mean_cells = []
    for k in shown:
        cell = format_number(result["mean"][ks.index(k)])
        if std is not None and ks.index(k) < len(std):
            cell += f" ± {format_number(std[ks.index(k)])}"
        mean_cells.append(cell)
    rows.append("| **mean** | " + " | ".join(mean_cells) + f" | {format_number(result.get('delta_K'))} |")
    corrections = result.get("net_corrections")
    if corrections:
        rows.append("| net corrections | " + " | ".join(str(corrections[ks.index(k)]) for k in shown) + " | |")
    return "\n".join(rows)


def _matching_keys(history: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    present = sorted({key for record in history for key in record if key != "step"})
    return [key for name in names for key in present if key == name or key.endswith("/" + name)]


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(record["step"], record[key]) for record in history if key in record and record[key] is not None]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points, strict=True)
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def plot_score_vs_k(result: Mapping[str, Any], path: Path) -> Path:
    """Mean score vs k (band ± std when given), each task a thin line, each task's ceiling dashed."""
    ks = eval_ks(result)
    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    per_task = result.get("per_task") or {}
    ceilings = result.get("ceiling") or {}
    for index, (task_id, scores) in enumerate(sorted(per_task.items(), key=lambda item: str(item[0]))):
        color = f"C{index % 10}"
        axes.plot(ks[: len(scores)], scores, color=color, linewidth=0.8, alpha=0.6,
                  label=str(task_id) if len(per_task) <= 10 else None)
        if task_id in ceilings and ceilings[task_id] is not None:
            axes.axhline(float(ceilings[task_id]), color=color, linestyle="--", linewidth=0.8, alpha=0.6)
    mean = np.asarray(result["mean"], dtype=np.float64)
    axes.plot(ks, mean, color="black", linewidth=2.2, marker="o", markersize=3, label="mean over tasks")
    if result.get("std") is not None:
        std = np.asarray(result["std"], dtype=np.float64)
        axes.fill_between(ks, mean - std, mean + std, color="black", alpha=0.12, linewidth=0)
    axes.set_xlabel("self-improvement step k")
    axes.set_ylabel(f"score (avg@{result.get('avg_at_n', '?')})")
    axes.set_title(f"{result.get('domain', '')} held-out, step {result.get('step', '?')}: "
                   f"Δ_K = {format_number(result.get('delta_K'), 3)}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """One small panel per entry of ``TRAINING_PANELS`` with data; ``None`` when the history has none."""
    panels = [(title, keys) for title, names in TRAINING_PANELS if (keys := _matching_keys(history, names))]
    if not panels:
        return None
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(4.2 * columns, 2.8 * rows)
    for index, (title, keys) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for key in keys:
            steps, values = _series(history, key)
            axes.plot(steps, values, linewidth=1.0, label=key)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        if len(keys) > 1:
            axes.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_depth_histogram(snapshot: Mapping[str, Any], path: Path) -> Path:
    """Counts of buffer entries per self-iteration depth."""
    depths = np.asarray(snapshot.get("depth", []), dtype=np.int64)
    figure = new_figure(5, 3.5)
    axes = figure.add_subplot()
    if depths.size:
        edges = np.arange(depths.min(), depths.max() + 2) - 0.5
        axes.hist(depths, bins=edges, color="C0", edgecolor="white")
    axes.set_xlabel("depth (self-iteration steps from the base task)")
    axes.set_ylabel("buffer entries")
    axes.set_title(f"buffer depth histogram ({depths.size} entries)")
    figure.tight_layout()
    figure.savefig(path)
    return path


def lineage_layout(ids: Sequence[int], parent_ids: Sequence[int]) -> dict[int, float]:
    """Vertical positions for a forest drawing: leaves on consecutive rows, a parent at its children's mean row.

    Entries whose parent is -1 or no longer in the buffer are roots. Cycles (never produced by the buffer) are cut.
    """
    present = set(int(entry) for entry in ids)
    children: dict[int, list[int]] = {entry: [] for entry in present}
    roots = []
    for entry, parent in zip(ids, parent_ids, strict=True):
        entry, parent = int(entry), int(parent)
        if parent in present and parent != entry:
            children[parent].append(entry)
        else:
            roots.append(entry)
    rows: dict[int, float] = {}
    next_row = 0.0
    visited: set[int] = set()
    for root in sorted(roots) + sorted(present):  # the second pass picks up nodes only reachable through a cycle
        if root in visited:
            continue
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                kids = [kid for kid in children[node] if kid in rows]
                rows[node] = float(np.mean([rows[kid] for kid in kids])) if kids else rows.get(node, next_row)
                if not kids:
                    next_row += 1.0
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            stack.extend((kid, False) for kid in sorted(children[node], reverse=True) if kid not in visited)
    return rows


def plot_lineage(snapshot: Mapping[str, Any], path: Path) -> Path:
    """The bootstrapped task space as a forest: x = depth, edges parent → child, nodes coloured by score."""
    from matplotlib.collections import LineCollection

    ids = [int(entry) for entry in snapshot.get("id", [])]
    parents = [int(parent) for parent in snapshot.get("parent_id", [-1] * len(ids))]
    depths = dict(zip(ids, (int(depth) for depth in snapshot.get("depth", [])), strict=False))
    scores = dict(zip(ids, (float(score) for score in snapshot.get("score", [])), strict=False))
    rows = lineage_layout(ids, parents)
    figure = new_figure(8, max(3.0, min(12.0, 0.12 * (len(rows) + 10))))
    axes = figure.add_subplot()
    segments = [[(depths.get(parent, 0), rows[parent]), (depths.get(entry, 0), rows[entry])]
                for entry, parent in zip(ids, parents, strict=True) if parent in rows and parent != entry]
    axes.add_collection(LineCollection(segments, colors="0.6", linewidths=0.6, zorder=1))
    if ids:
        points = axes.scatter([depths.get(entry, 0) for entry in ids], [rows[entry] for entry in ids],
                              c=[scores.get(entry, math.nan) for entry in ids], cmap="viridis", s=14, zorder=2)
        figure.colorbar(points, ax=axes, label="learnability score")
    axes.set_xlabel("depth")
    axes.set_yticks([])
    axes.set_title(f"task-space lineage ({len(ids)} entries, {len(segments)} parent links in the buffer)")
    axes.autoscale_view()
    figure.tight_layout()
    figure.savefig(path)
    return path


def _training_summary(history: Sequence[Mapping[str, Any]]) -> str:
    keys = [key for _, names in TRAINING_PANELS for key in _matching_keys(history, names)]
    if not keys:
        return "No training metrics logged yet."
    tail = max(1, len(history) // 10)
    rows = ["| metric | first | last | mean of last 10% |", "|---|---|---|---|"]
    for key in keys:
        _, values = _series(history, key)
        if values.size:
            rows.append(f"| {key} | {format_number(values[0])} | {format_number(values[-1])} | "
                        f"{format_number(np.nanmean(values[-tail:]) if np.isfinite(values[-tail:]).any() else None)} |")
    return "\n".join(rows)


def _eval_history_table(eval_results: Sequence[Mapping[str, Any]]) -> str:
    rows = ["| step | k=0 | k=K | Δ_K |", "|---|---|---|---|"]
    for result in eval_results:
        rows.append(f"| {result.get('step')} | {format_number(result['mean'][0])} | "
                    f"{format_number(result['mean'][-1])} | {format_number(result.get('delta_K'))} |")
    return "\n".join(rows)


def _environment_section(eval_results: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the run's environment was (the MLE sandbox's isolation in force), from the latest evaluation."""
    environment = next((r["environment"] for r in reversed(list(eval_results)) if r.get("environment")), None)
    if not environment or "sandbox" not in environment:
        return []
    sandbox = environment["sandbox"]
    flags = ("uid_drop", "network_namespace", "pid_namespace", "private_tmp")
    lines = ["## Sandbox", "",
             f"Isolation in force: {'full' if sandbox.get('full_isolation') else 'WEAK'} (mode `{sandbox.get('mode')}`"
             + (f"; missing {', '.join(sandbox['missing'])}" if sandbox.get("missing") else "") + ").", "",
             "| " + " | ".join([*flags, "cgroups", "disk_quota", "kill"]) + " |",
             "|" + "---|" * (len(flags) + 3),
             "| " + " | ".join([*("yes" if sandbox.get(f) else "no" for f in flags),
                                 (f"v{sandbox.get('cgroup_version')}: " + "+".join(sandbox.get("cgroups", [])))
                                 if sandbox.get("cgroups") else "none",
                                 str(sandbox.get("disk_quota")), str(sandbox.get("kill"))]) + " |", ""]
    if sandbox.get("cgroup_note"):
        lines += [f"cgroups: {sandbox['cgroup_note']}", ""]
    return lines


def write_report(workdir: str | os.PathLike, config_dict: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 eval_results: Sequence[Mapping[str, Any]], buffer_snapshot: Mapping[str, Any] | None) -> Path:
    """Writes ``<workdir>/report.md`` and its plots in ``<workdir>/plots/``; returns the report's path.

    Every input may be empty (or ``None`` for the snapshot): the report then says what is missing.
    """
    workdir = Path(workdir)
    plots = workdir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    config_dict = dict(config_dict or {})
    title = config_dict.get("experiment") or config_dict.get("name") or workdir.name
    method = config_dict.get("method")
    lines = [f"# ExIt run report: {title}" + (f" ({method})" if method else ""), "",
             f"- workdir: `{workdir}`",
             f"- training records: {len(history)}" + (f", last step {history[-1]['step']}" if history else ""),
             f"- evaluations: {len(eval_results)}", ""]
    evaluations = sorted((result for result in eval_results if isinstance(result.get("mean"), list) and result["mean"]),
                         key=lambda result: result.get("step", -1))
    if len(evaluations) != len(eval_results):
        lines += [f"({len(eval_results) - len(evaluations)} evaluation result(s) without a 'mean' list were skipped.)",
                  ""]
    lines += ["## Held-out self-improvement (latest evaluation)", ""]
    if evaluations:
        latest = evaluations[-1]
        lines += [f"Domain `{latest.get('domain', '?')}`, step {latest.get('step')}, K = {latest.get('K')}, "
                  f"avg@{latest.get('avg_at_n', '?')}. Δ_K = score(k=K) − score(k=0).", "",
                  final_table(latest), ""]
        plot_score_vs_k(latest, plots / "score_vs_k.png")
        lines += ["![score vs k](plots/score_vs_k.png)", ""]
        if len(evaluations) > 1:
            lines += ["### Evaluations over training", "", _eval_history_table(evaluations), ""]
    else:
        lines += ["No evaluation results yet.", ""]
    lines += _environment_section(eval_results)
    lines += ["## Training", "", _training_summary(history), ""]
    if plot_training_curves(history, plots / "training_curves.png") is not None:
        lines += ["![training curves](plots/training_curves.png)", ""]
    lines += ["## Task-space buffer", ""]
    if buffer_snapshot and len(buffer_snapshot.get("id", [])):
        depths = np.asarray(buffer_snapshot["depth"])
        lines += [f"{depths.size} entries, depth mean {depths.mean():.2f}, max {depths.max()}.", ""]
        plot_depth_histogram(buffer_snapshot, plots / "depth_histogram.png")
        plot_lineage(buffer_snapshot, plots / "lineage.png")
        lines += ["![depth histogram](plots/depth_histogram.png)", "", "![lineage](plots/lineage.png)", ""]
    else:
        lines += ["No buffer snapshot (the method keeps no buffer, or none was saved).", ""]
    config_text = json.dumps(config_dict, indent=2, sort_keys=True, default=str)
    lines += ["## Config", "", "<details><summary>config</summary>", "", "```json", config_text, "```", "",
              "</details>", ""]
    path = workdir / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
