"""Competition format: the prepared layout, metrics, normalisation, and the loading of users' own competitions.

A competition lives in one directory::

    <root>/<name>/
      description.md            # the task brief shown to the policy
      competition.json          # metric, (worst, best) normalisation range, id/target columns, split
      public/train.csv          # features + target column(s)
      public/test.csv           # features only
      public/sample_submission.csv
      private/answers.csv       # same columns as sample_submission; root-only (mode 600), never copied to a sandbox

``competition.json`` may also name a ``public_dir`` elsewhere: that is how a user's competition is represented. A
user's directory (this layout, or MLE-bench's ``<id>/prepared/{public,private}``, see ``mlebench.py``) is only ever
read: its derived metadata, description and a private copy of its answers are written to a cache entry
(``user_cache_root() / <hash of the source path and its files' sizes and mtimes>``), whose ``public_dir`` is the
user's own public directory, so solutions read the competition's files exactly as published.

Metrics take an ``answers`` frame and a ``submission`` frame already aligned by id (same row order, same columns).
Direction is encoded by (worst, best): ``normalise`` maps ``worst -> 0`` and ``best -> 1`` and clips, so a loss with
``worst > best`` needs no special case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exit_jax.filelock import cache_home, file_lock

# "auc" is the mean over the target columns of each column's ROC AUC (one column for most competitions, six for
# jigsaw-toxic-comment-classification-challenge): a column-wise mean needs no name of its own, and the greedy search
# (domain.validation_is_better) knows "auc" as higher-is-better.
METRICS = ("auc", "accuracy", "logloss", "rmse", "rmsle", "multiclass_logloss")
HIGHER_IS_BETTER = {"auc": True, "accuracy": True, "logloss": False, "rmse": False, "rmsle": False,
                    "multiclass_logloss": False}
TASKS = ("binary", "multiclass", "regression")
USER_CACHE_VERSION = 1
# MLE-bench refuses a log-loss submission whose rows do not sum to one within this (its spooky grader's tolerance).
PROBABILITY_SUM_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Competition:
    """A prepared competition on disk.

    Attributes:
      name: competition id (directory name).
      root: the competition directory (for a user's competition: its cache entry).
      metric: one of METRICS.
      worst: metric value mapped to normalised score 0 (e.g. a constant-prediction baseline).
      best: metric value mapped to normalised score 1.
      id_column: the submission's id column.
      target_columns: the submission's prediction columns (class names for multiclass log-loss).
      task: "binary", "multiclass" or "regression".
      split: "train" or "heldout" (held-out competitions are never trained on).
      public_path: the public files when they are not ``root / "public"`` (a user's own public directory).
      passthrough_columns: columns a submission carries besides id and targets, copied from the sample submission
        and not scored (detecting-insults-in-social-commentary's ``Date``).
      grader: the MLE-bench competition whose own grader scores this one when the ``mlebench`` package is
        importable (``score_aligned``); empty otherwise.
      source: the user's directory the competition was loaded from (None for built-ins).
      sample_submission: the sample submission's file name in the public directory (MLE-bench keeps each
        competition's own: ``sampleSubmission.csv``, ``sample_submission_null.csv``, ...).
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
    public_path: Path | None = None
    passthrough_columns: tuple[str, ...] = ()
    grader: str = ""
    source: Path | None = None
    sample_submission: str = "sample_submission.csv"

    @property
    def public_dir(self) -> Path:
        return self.public_path if self.public_path is not None else self.root / "public"

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
        d["passthrough_columns"] = list(self.passthrough_columns)
        d["public_path"] = str(self.public_path) if self.public_path is not None else None
        d["source"] = str(self.source) if self.source is not None else None
        return d


def normalise(score: float, worst: float, best: float) -> float:
    """(score - worst) / (best - worst) clipped to [0, 1]; NaN or inf scores give 0."""
    if not np.isfinite(score) or best == worst:
        return 0.0
    return float(np.clip((score - worst) / (best - worst), 0.0, 1.0))


def invalid_submission(message: str) -> Exception:
    """A ``grading.SubmissionError`` (imported here, at call time: grading imports this module)."""
    from exit_jax.domains.mle.grading import SubmissionError

    return SubmissionError(message)


def _binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's ROC AUC of one column over the rows it scores; 0.5 when one class is absent.

    Rows whose label is negative are left out: Kaggle and MLE-bench mark test rows that are not scored with -1
    (jigsaw-toxic-comment-classification-challenge's answers)."""
    from sklearn.metrics import roc_auc_score

    scored = labels >= 0
    positive = labels[scored] != 0
    if positive.all() or not positive.any():
        return 0.5
    return float(roc_auc_score(positive, scores[scored]))


def _rmsle(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over columns of scikit-learn's root mean squared log error (nomad2018's metric over its two targets).

    Values scikit-learn refuses (at or below -1, where log1p is undefined) make the submission invalid, as in
    MLE-bench, whose grader raises there."""
    from sklearn.metrics import root_mean_squared_log_error

    try:
        return float(np.mean([root_mean_squared_log_error(truth[:, j], predicted[:, j])
                              for j in range(truth.shape[1])]))
    except ValueError as err:
        raise invalid_submission(f"RMSLE cannot score this submission: {err}") from err


def _multiclass_logloss(truth: np.ndarray, probs: np.ndarray) -> float:
    """scikit-learn's log-loss of one-hot answers (each row's class: its 1) against one probability column per
    class, checked as MLE-bench's spooky-author-identification grader checks it: every probability in [0, 1], every
    row summing to one (within 1e-6). Kaggle's own scorer renormalised rows instead; that is "logloss"."""
    from sklearn.metrics import log_loss

    if ((probs < 0) | (probs > 1)).any():
        raise invalid_submission("multi-class log-loss: every probability must lie in [0, 1]")
    sums = probs.sum(axis=1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=PROBABILITY_SUM_TOLERANCE):
        row = int(np.argmax(np.abs(sums - 1.0)))
        raise invalid_submission(f"multi-class log-loss: each row's probabilities must sum to 1 (row {row} sums to "
                       f"{sums[row]:.6g})")
    with warnings.catch_warnings():  # scikit-learn warns about sums off by more than 1.5e-8; 1e-6 is allowed here
        warnings.simplefilter("ignore", UserWarning)
        return float(log_loss(truth.argmax(axis=1), probs, labels=list(range(truth.shape[1]))))


def compute_metric(metric: str, answers: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The metric on aligned frames holding only the target columns.

    Args:
      metric: one of METRICS.
      answers: [rows, targets] true values (one-hot for multiclass log-loss; 0/1 for AUC, -1 for unscored rows).
      submission: [rows, targets] predictions in the same order and columns.

    Raises:
      grading.SubmissionError: values the metric cannot score (rmsle, multiclass_logloss).
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
    if metric == "rmsle":
        return _rmsle(answers.to_numpy(float), submission.to_numpy(float))
    if metric == "multiclass_logloss":
        return _multiclass_logloss(answers.to_numpy(float), submission.to_numpy(float))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def score_aligned(competition: Competition, answers: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The competition's score on aligned target frames (``compute_metric``'s arguments).

    An MLE-bench competition (``competition.grader``) is scored by MLE-bench's own grader when the ``mlebench``
    package is importable, as the paper scored with ``mlebench grade``; otherwise, and for every other competition,
    by ``compute_metric`` (tests/domains/mle/test_mlebench_graders.py checks that the two agree)."""
    if competition.grader:
        from exit_jax.domains.mle import mlebench

        grade = mlebench.package_grader(competition.grader)
        if grade is not None:
            return mlebench.grade_aligned(grade, competition, answers, submission)
    return compute_metric(competition.metric, answers, submission)


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


def _field(meta: dict[str, Any], key: str, where: Path) -> Any:
    if key not in meta:
        raise ValueError(f"{where}: field {key!r} is missing (competition.json needs metric, worst, best, id_column, "
                         "target_columns and task)")
    return meta[key]


def _column_names(value: Any, key: str, where: Path) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: field {key!r} must be a list of column names, got {value!r}")
    return tuple(value)


def load_competition(comp_dir: Path) -> Competition:
    """Read a competition written by ``write_competition`` (or any directory with that layout, or a cache entry).

    Raises:
      FileNotFoundError: no ``competition.json``.
      ValueError: the file is not JSON, or a field is missing or out of range (the message names it).
    """
    comp_dir = Path(comp_dir)
    meta_path = comp_dir / "competition.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} is missing; write it, or load a user's directory (this layout or "
                                "MLE-bench's <id>/prepared/) with load_user_competitions")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as err:
        raise ValueError(f"{meta_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} must hold a JSON object, got {type(meta).__name__}")
    if _field(meta, "metric", meta_path) not in METRICS:
        raise ValueError(f"{meta_path}: field 'metric' must be one of {METRICS}, got {meta.get('metric')!r}")
    if _field(meta, "task", meta_path) not in TASKS:
        raise ValueError(f"{meta_path}: field 'task' must be one of {TASKS}, got {meta.get('task')!r}")
    if meta.get("split", "train") not in ("train", "heldout"):
        raise ValueError(f"{meta_path}: field 'split' must be 'train' or 'heldout', got {meta.get('split')!r}")
    try:
        worst, best = float(_field(meta, "worst", meta_path)), float(_field(meta, "best", meta_path))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{meta_path}: fields 'worst' and 'best' must be numbers ({err})") from err
    if not (np.isfinite(worst) and np.isfinite(best)) or worst == best:
        raise ValueError(f"{meta_path}: 'worst' ({worst}) and 'best' ({best}) must be finite and differ (worst is "
                         "normalised to 0, best to 1)")
    targets = _column_names(_field(meta, "target_columns", meta_path), "target_columns", meta_path)
    if not targets:
        raise ValueError(f"{meta_path}: field 'target_columns' is empty")
    public = meta.get("public_dir")
    return Competition(
        name=meta.get("name", comp_dir.name),
        root=comp_dir,
        metric=meta["metric"],
        worst=worst,
        best=best,
        id_column=str(_field(meta, "id_column", meta_path)),
        target_columns=targets,
        task=meta["task"],
        split=meta.get("split", "train"),
        public_path=Path(public) if public else None,
        passthrough_columns=_column_names(meta.get("passthrough_columns", ()), "passthrough_columns", meta_path),
        grader=str(meta.get("grader") or ""),
        source=Path(meta["source"]) if meta.get("source") else None,
        sample_submission=str(meta.get("sample_submission") or "sample_submission.csv"),
    )


# ---------------------------------------------------------------------------------------------- users' competitions
@dataclasses.dataclass(frozen=True)
class Derived:
    """What a user's competition directory yields, before it is written to its cache entry.

    Attributes:
      meta: the cache entry's competition.json (``load_competition``'s fields; ``public_dir`` the user's public
        directory, ``source`` the user's directory).
      description: the task brief.
      answers: the user's private answers file (copied, owner-only, into the cache entry).
    """

    meta: dict[str, Any]
    description: str
    answers: Path


def user_cache_root() -> Path:
    """Where users' competitions get their derived metadata and private answers: never their own directories."""
    return cache_home() / "mle" / "user"


def _listing(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file under ``paths`` (files or directories): a changed file changes it."""
    rows = []
    for top in paths:
        if top.is_file():
            info = top.stat()
            rows.append((str(top), info.st_size, info.st_mtime_ns))
            continue
        for directory, subdirs, files in os.walk(top):
            subdirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                try:
                    info = os.stat(path)
                except OSError:  # a dangling link: listed, so that fixing it rebuilds
                    rows.append((path, -1, -1))
                    continue
                rows.append((path, info.st_size, info.st_mtime_ns))
    return rows


def _readable_by_others(path: Path) -> bool:
    """Whether another uid (a sandboxed solution's) could open ``path``: it and every directory above it allow it."""
    path = path.resolve()
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


def check_submission_files(where: str, sample_path: Path, answers_path: Path, id_column: str,
                           target_columns: Sequence[str], passthrough_columns: Sequence[str], metric: str) -> None:
    """Refuse a competition whose sample submission and answers the grader could not use, naming the file and fix.

    The sample submission must have exactly the id, target and passthrough columns (it is the format solutions copy),
    the answers the id and target columns, numeric unless the metric is accuracy, with unique ids (the grader
    refuses repeated submission ids) that are the sample's ids.
    """
    try:
        sample = pd.read_csv(sample_path)
        answers = pd.read_csv(answers_path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{where}: cannot read {sample_path.name} / {answers_path.name}: {err}") from err
    expected = [id_column, *target_columns, *passthrough_columns]
    if sorted(map(str, sample.columns)) != sorted(expected):
        raise ValueError(f"{where}: {sample_path} has columns {list(sample.columns)}, but the competition's id, "
                         f"target and passthrough columns are {expected}; set id_column / target_columns / "
                         "passthrough_columns in its competition.json")
    missing = [c for c in (id_column, *target_columns) if c not in answers.columns]
    if missing:
        raise ValueError(f"{where}: the answers {answers_path} lack column(s) {missing} (they have "
                         f"{list(answers.columns)[:12]})")
    answer_ids = answers[id_column].astype(str)
    if answer_ids.duplicated().any():
        raise ValueError(f"{where}: the answers {answers_path} repeat ids in {id_column!r} (e.g. "
                         f"{answer_ids[answer_ids.duplicated()].iloc[0]!r}); the grader matches rows by id, so ids "
                         "must be unique")
    sample_ids = set(sample[id_column].astype(str))
    if sample_ids != set(answer_ids):
        extra, lacking = sorted(sample_ids - set(answer_ids))[:3], sorted(set(answer_ids) - sample_ids)[:3]
        raise ValueError(f"{where}: the ids of {sample_path} ({len(sample_ids)}) are not those of the answers "
                         f"{answers_path} ({answer_ids.nunique()}): only in the sample e.g. {extra}, only in the "
                         f"answers e.g. {lacking}")
    if metric != "accuracy":
        for column in target_columns:
            if not pd.api.types.is_numeric_dtype(answers[column]):
                raise ValueError(f"{where}: answers column {column!r} of {answers_path} is not numeric; metric "
                                 f"{metric!r} needs numbers (one-hot columns for log-loss)")


def _derive_prepared(comp_dir: Path) -> Derived:
    """The competition.json layout (``write_competition``'s), read without writing anything there."""
    meta_path = comp_dir / "competition.json"
    probe = load_competition(comp_dir)  # validates the fields, naming the file
    meta = json.loads(meta_path.read_text())
    if meta.get("public_dir"):
        raise ValueError(f"{meta_path}: field 'public_dir' is for cache entries; the public files of a "
                         "competition directory are its public/ folder")
    for needed in (comp_dir / "description.md", comp_dir / "public" / "sample_submission.csv",
                   comp_dir / "private" / "answers.csv"):
        if not needed.is_file():
            raise FileNotFoundError(f"competition {probe.name!r}: {needed} is missing (the layout: description.md, "
                                    "competition.json, public/{train,test,sample_submission}.csv, "
                                    "private/answers.csv)")
    check_submission_files(f"competition {probe.name!r} ({comp_dir})", comp_dir / "public" / "sample_submission.csv",
                           comp_dir / "private" / "answers.csv", probe.id_column, probe.target_columns,
                           probe.passthrough_columns, probe.metric)
    meta = {**meta, "name": probe.name, "public_dir": str((comp_dir / "public").resolve())}
    return Derived(meta, (comp_dir / "description.md").read_text(), comp_dir / "private" / "answers.csv")


def cache_entry(layout: str, source: Path, watched: Sequence[Path], derive, salt: str = "") -> Competition:
    """The cache entry of a user's competition, built on first use or after any watched file changed.

    Keyed by the source path and the (size, mtime) listing of ``watched`` (and ``salt``, e.g. a preset's fields), so
    an edited directory gets a fresh entry; built in a staging directory under a lock and moved into place, so
    concurrent processes never see half of one. The entry holds competition.json, description.md and
    private/answers.csv (a copy, mode 600 in a 700 directory, below ``cache_home()``, which the sandbox hides).
    """
    source = source.resolve()
    listing = _listing([Path(p) for p in watched])
    key = hashlib.sha256(json.dumps([USER_CACHE_VERSION, layout, str(source), listing, salt]).encode()).hexdigest()
    root = user_cache_root()
    entry = root / key[:32]
    if (entry / "competition.json").is_file():
        return load_competition(entry)
    derived = derive()
    if _readable_by_others(derived.answers):
        warnings.warn(f"the private answers {derived.answers} are readable by other users: a sandboxed solution "
                      "(which runs as another uid) could find and read them. The grader uses a private copy; restrict "
                      f"the original with chmod -R o-rwx {derived.answers.parent}", stacklevel=3)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    with file_lock(root / ".lock"):
        if not (entry / "competition.json").is_file():
            staging = root / f".{key[:32]}.building"
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "private").mkdir(parents=True)
            os.chmod(staging, 0o700)
            os.chmod(staging / "private", 0o700)
            shutil.copyfile(derived.answers, staging / "private" / "answers.csv")
            os.chmod(staging / "private" / "answers.csv", 0o600)
            (staging / "description.md").write_text(derived.description)
            meta = {**derived.meta, "source": str(source), "layout": layout}
            (staging / "competition.json").write_text(json.dumps(meta, indent=1))
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(staging, entry)
    return load_competition(entry)


def competition_layout(path: Path) -> str | None:
    """"mlebench" (``<id>/prepared/{public,private}``, or that ``prepared`` directory), "prepared" (this module's
    competition.json layout) or None."""
    from exit_jax.domains.mle import mlebench

    if mlebench.prepared_dir(path) is not None:
        return "mlebench"
    if (path / "competition.json").is_file():
        return "prepared"
    return None


def load_user_competition(path: Path, overrides: dict[str, Any] | None = None) -> Competition:
    """One user competition directory (either layout), through its cache entry; the directory is only read.

    ``overrides`` (MLE-bench layout only) take precedence over its preset and its own competition.json.
    """
    from exit_jax.domains.mle import mlebench

    path = Path(path)
    layout = competition_layout(path)
    if layout == "mlebench":
        return mlebench.load(path, overrides)
    if layout == "prepared":
        if overrides:
            raise ValueError(f"{path}: overrides apply to MLE-bench directories; edit its competition.json instead")
        return cache_entry("prepared", path, [path], lambda: _derive_prepared(path))
    raise FileNotFoundError(f"{path} is not a competition: expected competition.json (with description.md, public/, "
                            "private/answers.csv) or MLE-bench's prepared/public and prepared/private")


def _refuse_half_prepared(path: Path, field: str) -> None:
    """A ``prepared/`` directory without both ``public/`` and ``private/`` is an interrupted ``mlebench prepare``."""
    prepared = path / "prepared"
    if prepared.is_dir() and competition_layout(path) is None:
        lacking = [part for part in ("public", "private") if not (prepared / part).is_dir()]
        raise FileNotFoundError(f"{field}: {prepared} lacks {' and '.join(lacking)}/; re-run "
                                f"`mlebench prepare -c {path.name}`")


def find_competitions(directory: Path, field: str = "domain.competition_dirs") -> list[Path]:
    """The competition directories ``directory`` holds: itself when it is one, else its immediate subdirectories
    that are (MLE-bench's data root ``<root>/<id>/prepared/...`` included), sorted by name.

    Raises:
      FileNotFoundError: ``directory`` is missing, or neither it nor a subdirectory is a competition.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"{field}: {directory} is not a directory")
    if competition_layout(directory) is not None:
        return [directory]
    _refuse_half_prepared(directory, field)
    found, unprepared = [], []
    for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _refuse_half_prepared(child, field)
        if competition_layout(child) is not None:
            found.append(child)
        elif (child / "raw").is_dir() or (child / f"{child.name}.zip").is_file():
            unprepared.append(child.name)
    if unprepared:
        warnings.warn(f"{field}: {directory} holds MLE-bench downloads that are not prepared (no prepared/public and "
                      f"prepared/private): {', '.join(unprepared)}; run `mlebench prepare -c <id>` to include them",
                      stacklevel=2)
    if not found:
        raise FileNotFoundError(
            f"{field}: {directory} holds no competition. Give a competition directory (competition.json, "
            "description.md, public/, private/answers.csv), an MLE-bench competition directory (<id>/prepared/"
            "{public,private}) or a directory of such directories (e.g. MLE-bench's data root)")
    return found


def load_user_competitions(directories: Sequence[str | Path], field: str = "domain.competition_dirs"
                           ) -> list[Competition]:
    """Every competition the configured directories hold (``find_competitions``), each through its cache entry.

    Raises:
      FileNotFoundError / ValueError: a missing directory or file, a bad field, or two competitions of one name
        (the message names the directories).
    """
    competitions: dict[str, Competition] = {}
    for directory in directories:
        for path in find_competitions(Path(directory), field):
            competition = load_user_competition(path)
            if competition.name in competitions:
                raise ValueError(f"{field}: two competitions are named {competition.name!r}: "
                                 f"{competitions[competition.name].source} and {competition.source}; list one")
            competitions[competition.name] = competition
    return list(competitions.values())


def load_mlebench_competition(
    path: Path,
    metric: str | None = None,
    worst: float | None = None,
    best: float | None = None,
    task: str | None = None,
    split: str | None = None,
    answers_file: str | None = None,
) -> Competition:
    """A real MLE-bench prepared competition (``<id>/prepared/{public,private}``, or that ``prepared`` directory).

    Read without writing anything there (see ``mlebench.load``): the paper's six competitions have presets (metric,
    Table 3 range, files, columns); the arguments given here override them, and for other competitions supply what
    has no preset (at least ``metric``, ``worst`` and ``best``). Without a preset or an override, the split is
    "heldout", the id column the first column of the sample submission and the targets the rest.

    Args:
      path: the competition directory (containing ``prepared/``) or the ``prepared`` directory itself.
      metric: one of METRICS.
      worst, best: normalisation range.
      task: "binary" / "multiclass" / "regression"; inferred from the metric when None.
      split: which split the competition belongs to.
      answers_file: file name inside ``private/``.
    """
    from exit_jax.domains.mle import mlebench

    if metric is not None and metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    given = {"metric": metric, "worst": worst, "best": best, "task": task, "split": split,
             "answers_file": answers_file}
    path = Path(path)
    if mlebench.prepared_dir(path) is None:
        raise FileNotFoundError(f"MLE-bench layout: {path} holds no prepared/public and prepared/private")
    return mlebench.load(path, {k: v for k, v in given.items() if v is not None})
