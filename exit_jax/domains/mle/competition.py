"""Competition format: the MLE-bench prepared layout, metrics, normalisation, and an adapter for real MLE-bench data.

A competition lives in one directory::

    <root>/<name>/
      description.md            # the task brief shown to the policy
      competition.json          # metric, (worst, best) normalisation range, id/target columns, split
      public/train.csv          # features + target column(s)
      public/test.csv           # features only
      public/sample_submission.csv
      private/answers.csv       # same columns as sample_submission; root-only (mode 600), never copied to a sandbox

Metrics take an ``answers`` frame and a ``submission`` frame already aligned by id (same row order, same columns).
Direction is encoded by (worst, best): ``normalise`` maps ``worst -> 0`` and ``best -> 1`` and clips, so a loss with
``worst > best`` needs no special case.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("auc", "accuracy", "logloss", "rmse")
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "rmse": False}


@dataclasses.dataclass(frozen=True)
class Competition:
    """A prepared competition on disk.

    Attributes:
      name: competition id (directory name).
      root: the competition directory.
      metric: one of METRICS.
      worst: metric value mapped to normalised score 0 (e.g. a constant-prediction baseline).
      best: metric value mapped to normalised score 1.
      id_column: the submission's id column.
      target_columns: the submission's prediction columns (class names for multiclass log-loss).
      task: "binary", "multiclass" or "regression".
      split: "train" or "heldout" (held-out competitions are never trained on).
    """

    name: str
    root: Path
    metric: str
    worst: float
    best: float
    id_column: str
    target_columns: tuple[str, ...]
    task: str
    split: str = "train"

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def answers_path(self) -> Path:
        return self.root / "private" / "answers.csv"

    @property
    def description(self) -> str:
        return (self.root / "description.md").read_text()

    def normalise(self, score: float) -> float:
        return normalise(score, self.worst, self.best)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("root")
        d["target_columns"] = list(self.target_columns)
        return d


def normalise(score: float, worst: float, best: float) -> float:
    """(score - worst) / (best - worst) clipped to [0, 1]; NaN or inf scores give 0."""
    if not np.isfinite(score) or best == worst:
        return 0.0
    return float(np.clip((score - worst) / (best - worst), 0.0, 1.0))


def _binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; 0.5 when one class is absent."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def compute_metric(metric: str, answers: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The metric on aligned frames holding only the target columns.

    Args:
      metric: one of METRICS.
      answers: [rows, targets] true values (one-hot for multiclass log-loss; 0/1 for AUC).
      submission: [rows, targets] predictions in the same order and columns.
    """
    if metric == "auc":
        return float(np.mean([_binary_auc(answers[c].to_numpy(float), submission[c].to_numpy(float))
                              for c in answers.columns]))
    if metric == "accuracy":
        col = answers.columns[0]
        truth = answers[col].astype(str).str.strip().to_numpy()
        guess = submission[col].astype(str).str.strip().to_numpy()
        return float(np.mean(truth == guess))
    if metric == "logloss":
        truth = answers.to_numpy(float)
        probs = np.clip(submission.to_numpy(float), 1e-15, None)
        if truth.shape[1] == 1:  # binary log-loss with a single probability column
            p = np.clip(probs[:, 0], 1e-15, 1 - 1e-15)
            return float(-np.mean(truth[:, 0] * np.log(p) + (1 - truth[:, 0]) * np.log(1 - p)))
        probs = probs / probs.sum(axis=1, keepdims=True)  # Kaggle renormalises each row
        return float(-np.mean(np.sum(truth * np.log(np.clip(probs, 1e-15, 1.0)), axis=1)))
    if metric == "rmse":
        diff = answers.to_numpy(float) - submission.to_numpy(float)
        return float(np.sqrt(np.mean(diff**2)))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def write_competition(
    root: Path,
    name: str,
    description: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    answers: pd.DataFrame,
    sample_submission: pd.DataFrame,
    meta: dict[str, Any],
) -> Competition:
    """Write a competition directory; the private answers become owner-only (mode 600 in a 700 directory)."""
    comp_dir = Path(root) / name
    (comp_dir / "public").mkdir(parents=True, exist_ok=True)
    (comp_dir / "private").mkdir(parents=True, exist_ok=True)
    train.to_csv(comp_dir / "public" / "train.csv", index=False)
    test.to_csv(comp_dir / "public" / "test.csv", index=False)
    sample_submission.to_csv(comp_dir / "public" / "sample_submission.csv", index=False)
    answers.to_csv(comp_dir / "private" / "answers.csv", index=False)
    os.chmod(comp_dir / "private" / "answers.csv", 0o600)
    os.chmod(comp_dir / "private", 0o700)
    (comp_dir / "description.md").write_text(description)
    (comp_dir / "competition.json").write_text(json.dumps({"name": name, **meta}, indent=1))
    return load_competition(comp_dir)


def load_competition(comp_dir: Path) -> Competition:
    """Read a competition written by ``write_competition`` (or any directory with that layout)."""
    comp_dir = Path(comp_dir)
    meta_path = comp_dir / "competition.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} is missing; write it or use load_mlebench_competition")
    meta = json.loads(meta_path.read_text())
    if meta.get("metric") not in METRICS:
        raise ValueError(f"{meta_path}: field 'metric' must be one of {METRICS}, got {meta.get('metric')!r}")
    return Competition(
        name=meta.get("name", comp_dir.name),
        root=comp_dir,
        metric=meta["metric"],
        worst=float(meta["worst"]),
        best=float(meta["best"]),
        id_column=meta["id_column"],
        target_columns=tuple(meta["target_columns"]),
        task=meta["task"],
        split=meta.get("split", "train"),
    )


def load_mlebench_competition(
    path: Path,
    metric: str,
    worst: float,
    best: float,
    task: str | None = None,
    split: str = "heldout",
    answers_file: str | None = None,
) -> Competition:
    """Adapt a real MLE-bench prepared competition (``<id>/prepared/{public,private}``) to this format in place.

    MLE-bench graders are Python functions, so the metric and its (worst, best) range (the paper's Table 3) are
    supplied by the caller. The id column is the first column of ``sample_submission.csv`` and the target columns the
    rest. The private answers file is ``answers_file`` or the single CSV in ``private/``. A ``competition.json`` and
    ``answers.csv`` link are added next to the data so the sandbox and grader can use it like a built-in.

    Args:
      path: the competition directory (containing ``prepared/``) or the ``prepared`` directory itself.
      metric: one of METRICS.
      worst, best: normalisation range.
      task: "binary" / "multiclass" / "regression"; inferred from the metric when None.
      split: which split the competition belongs to.
      answers_file: file name inside ``private/``.
    """
    path = Path(path)
    prepared = path / "prepared" if (path / "prepared").is_dir() else path
    public, private = prepared / "public", prepared / "private"
    for needed in (public / "sample_submission.csv", public / "train.csv", public / "test.csv"):
        if not needed.exists():
            raise FileNotFoundError(f"MLE-bench layout: {needed} is missing")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if answers_file is None:
        csvs = sorted(p.name for p in private.glob("*.csv") if not p.is_symlink())
        if len(csvs) != 1:
            raise ValueError(f"{private}: expected exactly one CSV of answers, found {csvs}; pass answers_file")
        answers_file = csvs[0]
    columns = list(pd.read_csv(public / "sample_submission.csv", nrows=0).columns)
    if task is None:
        task = {"rmse": "regression", "auc": "binary"}.get(metric, "multiclass")
    if answers_file != "answers.csv":
        link = private / "answers.csv"
        if not link.exists():
            link.symlink_to(answers_file)
    description = next((p for p in (public / "description.md", path / "description.md") if p.exists()), None)
    if not (prepared / "description.md").exists():
        text = description.read_text() if description else f"# {path.name}\n\nPredict {columns[1:]}."
        (prepared / "description.md").write_text(text)
    meta = {"name": path.name if path.name != "prepared" else path.parent.name, "metric": metric,
            "worst": worst, "best": best, "id_column": columns[0], "target_columns": columns[1:],
            "task": task, "split": split}
    (prepared / "competition.json").write_text(json.dumps(meta, indent=1))
    return load_competition(prepared)
