"""MLE-bench's prepared layout: the paper's six competitions as presets, the adapter, and MLE-bench's own graders.

``mlebench prepare`` leaves each competition in ``<data root>/<id>/prepared/``: ``public/`` (what an agent sees: the
competition's own files, e.g. ``train.json`` or image zips, a sample submission under the competition's own name, and
``description.md``) and ``private/`` (the answers, usually ``test.csv``). The adapter reads that directory and never
writes to it: a competition's metadata, description and a private copy of its answers go to a cache entry
(``competition.cache_entry``), whose ``public_dir`` is the user's ``prepared/public``, so solutions read the files
as they were published on Kaggle.

MLE-bench's graders are Python functions, one per competition, so the six competitions of the paper's notes (§3.3)
are presets here: files, columns, metric, the Table 3 normalisation range and split, each read from MLE-bench's
``prepare.py`` / ``grade.py`` / ``config.yaml``. Any other prepared competition loads when a ``competition.json``
beside it (in ``<id>/`` or ``<id>/prepared/``, written by the user) gives at least its metric and range; the same
file overrides a preset's fields. When the ``mlebench`` package is importable, a preset competition is scored by
MLE-bench's own grader (``competition.score_aligned``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from exit_jax.domains.mle.competition import METRICS, TASKS, Competition, Derived, cache_entry, check_submission_files

# The fields a user's competition.json may set for an MLE-bench directory.
OVERRIDABLE = ("name", "metric", "worst", "best", "task", "split", "id_column", "target_columns",
               "passthrough_columns", "sample_submission", "answers_file", "grader")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One MLE-bench competition as ``mlebench prepare`` lays it out and ``mlebench grade`` scores it.

    Attributes:
      metric: one of ``competition.METRICS``.
      worst, best: the normalisation range (the paper's Table 3).
      split: "train" or "heldout" (Table 3's "test").
      task: "binary", "multiclass" or "regression".
      id_column, target_columns: the submission's id and scored columns.
      sample_submission: the sample submission's file name in ``public/``.
      answers: the answers' file name in ``private/``.
      passthrough_columns: sample-submission columns that are neither id nor scored.
      public_files: files or folders ``public/`` must hold; each entry lists alternatives (a folder or its zip).
      test_entries: where the test ids can also be read (a folder of per-id entries or its zip), checked against
        the sample submission when present.
    """

    metric: str
    worst: float
    best: float
    split: str
    task: str
    id_column: str
    target_columns: tuple[str, ...]
    sample_submission: str = "sample_submission.csv"
    answers: str = "test.csv"
    passthrough_columns: tuple[str, ...] = ()
    public_files: tuple[tuple[str, ...], ...] = (("train.csv",), ("test.csv",))
    test_entries: tuple[str, ...] = ()


# Table 3 (shared/exit-paper-notes.md §3.3). The AUC ranges are (0, 1) as printed, so a constant prediction (AUC 0.5)
# normalises to 0.5, not 0. Spooky's (1.5, 1.0) is kept as printed although the notes flag it ("sic": a loss is best
# at 0): with it every log-loss at or below 1.0 scores 1, and a uniform prediction (ln 3 = 1.099) already scores 0.80.
# A competition.json beside the data overrides it (e.g. "best": 0.0).
PRESETS: dict[str, Preset] = {
    "random-acts-of-pizza": Preset(
        "auc", 0.0, 1.0, "train", "binary", "request_id", ("requester_received_pizza",),
        sample_submission="sampleSubmission.csv",
        public_files=(("train.json", "train.zip"), ("test.json", "test.zip"))),
    "spooky-author-identification": Preset(
        "multiclass_logloss", 1.5, 1.0, "train", "multiclass", "id", ("EAP", "HPL", "MWS")),
    # No id column: MLE-bench's grader matches rows by the comment text; Date is carried through unscored.
    "detecting-insults-in-social-commentary": Preset(
        "auc", 0.0, 1.0, "train", "binary", "Comment", ("Insult",), sample_submission="sample_submission_null.csv",
        passthrough_columns=("Date",)),
    "nomad2018-predict-transparent-conductors": Preset(
        "rmsle", 1.0, 0.0, "heldout", "regression", "id", ("formation_energy_ev_natom", "bandgap_energy_ev"),
        public_files=(("train.csv",), ("test.csv",), ("train",), ("test",)), test_entries=("test",)),
    # Six binary labels, scored as the mean of their AUCs; answers rows of -1 are not scored.
    "jigsaw-toxic-comment-classification-challenge": Preset(
        "auc", 0.0, 1.0, "heldout", "binary", "id",
        ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")),
    # No test.csv: the test ids are the sample submission's (and the test images' names).
    "aerial-cactus-identification": Preset(
        "auc", 0.0, 1.0, "heldout", "binary", "id", ("has_cactus",),
        public_files=(("train.csv",), ("train.zip", "train"), ("test.zip", "test")), test_entries=("test", "test.zip")),
}


def prepared_dir(path: Path) -> Path | None:
    """The ``prepared`` directory of an MLE-bench competition directory (or ``path`` itself when it is one)."""
    path = Path(path)
    for candidate in (path / "prepared", path):
        if candidate.name == "prepared" and (candidate / "public").is_dir() and (candidate / "private").is_dir():
            return candidate
    return None


def _competition_dir(prepared: Path) -> Path:
    return prepared.parent


def _user_overrides(comp_dir: Path, prepared: Path) -> tuple[dict[str, Any], Path | None]:
    """The user's own competition.json for this competition (``<id>/`` or ``<id>/prepared/``), if any."""
    files = [p for p in (comp_dir / "competition.json", prepared / "competition.json") if p.is_file()]
    if not files:
        return {}, None
    if len(files) > 1:
        raise ValueError(f"MLE-bench competition {comp_dir.name!r}: both {files[0]} and {files[1]} exist; keep one")
    try:
        meta = json.loads(files[0].read_text())
    except ValueError as err:
        raise ValueError(f"{files[0]} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{files[0]} must hold a JSON object")
    unknown = sorted(set(meta) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"{files[0]}: unknown field(s) {unknown}; an MLE-bench competition's competition.json may "
                         f"set {list(OVERRIDABLE)}")
    return meta, files[0]


def _infer_sample(public: Path, where: str) -> str:
    candidates = sorted(p.name for p in public.glob("*.csv") if "sample" in p.name.lower())
    if len(candidates) != 1:
        raise ValueError(f"{where}: cannot tell the sample submission among {candidates or 'no sample*.csv'} in "
                         f"{public}; name it with \"sample_submission\" in a competition.json beside the data")
    return candidates[0]


def _infer_answers(private: Path, where: str) -> str:
    candidates = sorted(p.name for p in private.glob("*.csv") if not p.is_symlink())
    if "test.csv" in candidates:  # mlebench prepare's answers file for nearly every competition
        return "test.csv"
    if len(candidates) != 1:
        raise ValueError(f"{where}: expected one CSV of answers in {private}, found {candidates}; name it with "
                         "\"answers_file\" in a competition.json beside the data")
    return candidates[0]


def _entry_names(path: Path) -> set[str]:
    """The per-id entries of a test folder (its children) or of its zip (the first component of each member)."""
    if path.is_dir():
        return {p.name for p in path.iterdir()}
    with zipfile.ZipFile(path) as archive:
        return {name.strip("/").split("/")[0] for name in archive.namelist() if name.strip("/")}


def derive(prepared: Path, overrides: dict[str, Any] | None = None) -> Derived:
    """The metadata, description and answers of an MLE-bench prepared competition (read only).

    Precedence: ``overrides`` (the legacy ``load_mlebench_competition`` arguments), then the user's competition.json
    beside the data, then the preset. Without a preset the metric and range must come from one of the first two.

    Raises:
      FileNotFoundError: a file the competition needs is missing (named, with what produces it).
      ValueError: no metric / range for a competition without a preset, or files the grader could not use.
    """
    comp_dir = _competition_dir(prepared)
    public, private = prepared / "public", prepared / "private"
    user, user_file = _user_overrides(comp_dir, prepared)
    name = str((overrides or {}).get("name") or user.get("name") or comp_dir.name)
    preset = PRESETS.get(comp_dir.name)
    fields = dataclasses.asdict(preset) if preset else {}
    fields = {**fields, "answers_file": fields.pop("answers", None), **user, **(overrides or {})}
    where = f"MLE-bench competition {name!r} ({comp_dir})"
    missing = [k for k in ("metric", "worst", "best") if fields.get(k) is None]
    if missing:
        raise ValueError(f"{where} has no preset (presets: {', '.join(PRESETS)}) and no {', '.join(missing)}: write "
                         f"a competition.json in {comp_dir} with \"metric\" (one of {METRICS}), \"worst\" and \"best\" "
                         "(the normalisation range), and optionally id_column, target_columns, task, split")
    if fields["metric"] not in METRICS:
        raise ValueError(f"{user_file or where}: metric must be one of {METRICS}, got {fields['metric']!r}")
    for group in fields.get("public_files") or ():
        if not any((public / option).exists() for option in group):
            raise FileNotFoundError(f"{where}: {public / group[0]} is missing"
                                    + (f" (or {', '.join(group[1:])})" if len(group) > 1 else "")
                                    + f"; `mlebench prepare -c {comp_dir.name}` writes it")
    sample_name = fields.get("sample_submission") or _infer_sample(public, where)
    answers_name = fields.get("answers_file") or _infer_answers(private, where)
    sample_path, answers_path = public / sample_name, private / answers_name
    for needed in (sample_path, answers_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{where}: {needed} is missing; `mlebench prepare -c {comp_dir.name}` writes it")
    columns = [str(c) for c in pd.read_csv(sample_path, nrows=0).columns]
    id_column = fields.get("id_column") or columns[0]
    passthrough = tuple(fields.get("passthrough_columns") or ())
    targets = tuple(fields.get("target_columns") or [c for c in columns if c != id_column and c not in passthrough])
    task = fields.get("task") or {"rmse": "regression", "rmsle": "regression", "auc": "binary",
                                  "accuracy": "multiclass"}.get(fields["metric"], "multiclass")
    if task not in TASKS:
        raise ValueError(f"{user_file or where}: task must be one of {TASKS}, got {task!r}")
    check_submission_files(where, sample_path, answers_path, id_column, targets, passthrough, fields["metric"])
    for entry in fields.get("test_entries") or ():
        if (public / entry).exists():
            ids = set(pd.read_csv(sample_path, usecols=[id_column])[id_column].astype(str))
            entries = _entry_names(public / entry)
            if ids != entries:
                raise ValueError(f"{where}: the test entries in {public / entry} ({len(entries)}) are not the ids of "
                                 f"{sample_path} ({len(ids)}); e.g. {sorted(ids ^ entries)[:3]}")
    description_file = next((p for p in (public / "description.md", prepared / "description.md",
                                         comp_dir / "description.md") if p.is_file()), None)
    if description_file is not None:
        description = description_file.read_text()
    else:
        warnings.warn(f"{where}: no description.md in {public} (mlebench prepare writes it); the prompt gets a "
                      "generated one-line description", stacklevel=2)
        description = f"# {name}\n\nPredict {', '.join(targets)} for each {id_column} of the test set.\n"
    meta = {"name": name, "metric": fields["metric"], "worst": float(fields["worst"]), "best": float(fields["best"]),
            "id_column": id_column, "target_columns": list(targets), "passthrough_columns": list(passthrough),
            "task": task, "split": fields.get("split") or "heldout", "public_dir": str(public.resolve()),
            "sample_submission": sample_name,
            # MLE-bench's own grader for the presets (their graders were read for the synthetic-id call in
            # grade_aligned); others opt in with "grader" in their competition.json.
            "grader": fields.get("grader", comp_dir.name if preset else "") or ""}
    return Derived(meta, description, answers_path)


def load(path: Path, overrides: dict[str, Any] | None = None) -> Competition:
    """An MLE-bench competition (``<id>/`` holding ``prepared/``, or ``prepared/`` itself) via its cache entry."""
    prepared = prepared_dir(Path(path))
    if prepared is None:
        raise FileNotFoundError(f"{path}: no prepared/public and prepared/private (run `mlebench prepare -c <id>`)")
    comp_dir = _competition_dir(prepared)
    watched = [prepared] + [p for p in (comp_dir / "competition.json",) if p.is_file()]
    preset = PRESETS.get(comp_dir.name)
    salt = json.dumps([dataclasses.asdict(preset) if preset else None, overrides or {}], sort_keys=True, default=str)
    return cache_entry("mlebench", comp_dir, watched, lambda: derive(prepared, overrides), salt)


# ---------------------------------------------------------------------------------------------- MLE-bench's graders
@functools.cache
def package_grader(competition_id: str) -> Callable[[pd.DataFrame, pd.DataFrame], float] | None:
    """MLE-bench's ``grade(submission, answers)`` for a competition, or None when ``mlebench`` is not importable.

    The module path is the one MLE-bench's config.yaml names (``mlebench.competitions.<id>.grade:grade``). A package
    that is installed but fails to import is reported once and not used."""
    if importlib.util.find_spec("mlebench") is None:
        return None
    try:
        module = importlib.import_module(f"mlebench.competitions.{competition_id}.grade")
    except Exception as err:  # noqa: BLE001 - any import failure: fall back to this project's metric, loudly
        warnings.warn(f"mlebench is installed but its grader for {competition_id} does not import ({err!r}); "
                      "scoring with exit_jax's own metric", stacklevel=2)
        return None
    return getattr(module, "grade", None)


def grade_aligned(grade: Callable[[pd.DataFrame, pd.DataFrame], float], competition: Competition,
                  answers: pd.DataFrame, submission: pd.DataFrame) -> float:
    """MLE-bench's grader on target frames that ``grading.check_and_score`` already aligned by id.

    The grader gets both frames with the competition's id column restored as row numbers (the rows are aligned, and
    the six presets' graders only sort and match by id), with columns in the answers' order. Whatever it refuses
    (``InvalidSubmissionError``, or an exception from scikit-learn, which ``mlebench grade`` also counts as an
    invalid submission) is a ``SubmissionError``. Unlike ``mlebench grade``, the score is not rounded to 5 places.
    """
    from exit_jax.domains.mle.competition import invalid_submission

    ids = pd.RangeIndex(len(answers))
    targets = list(competition.target_columns)
    truth = pd.concat([pd.DataFrame({competition.id_column: ids}), answers[targets].reset_index(drop=True)], axis=1)
    guess = pd.concat([pd.DataFrame({competition.id_column: ids}), submission[targets].reset_index(drop=True)], axis=1)
    try:
        return float(grade(guess, truth))
    except Exception as err:  # noqa: BLE001 - MLE-bench's own rule: a grader that raises means an invalid submission
        raise invalid_submission(f"MLE-bench's grader for {competition.grader} refused the submission: {err}") from err
