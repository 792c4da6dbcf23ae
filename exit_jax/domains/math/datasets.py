"""Loaders for math problem files a user already has: JSONL, JSON (an array or one object per line) and Parquet, in
the layouts of the common sets. Field names are matched case-insensitively, first match wins.

- MATH, NuminaMath: ``problem``; the answer is the last ``\\boxed{...}`` of ``solution`` (or ``output`` /
  ``response``).
- DeepScaleR, MATH500, AIME / AMC: ``problem`` / ``question`` / ``input`` (AIME's ``Problem``) and ``answer`` /
  ``final_answer`` / ``ground_truth`` / ``target`` (``Answer``).
- verl (RL Parquet): ``prompt``, a chat message list whose last user message is the problem, and
  ``reward_model.ground_truth``.
- TRL conversational: ``prompt`` as a message list, with ``answer`` or a boxed ``solution``.

An explicit answer field wins over a solution's box. Ids: ``id`` / ``unique_id`` / ``problem_id`` / ``idx`` (verl:
``extra_info.index``), else the row's index, prefixed ``<set name>/``.

A row that cannot be read is an error naming the file, the row (1-based) and what is missing: a file is never
silently mangled (a message list pasted in as text) nor silently thinned (rows skipped).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exit_jax.domains.math.grading import extract_boxed

PROBLEM_FIELDS = ("problem", "question", "prompt", "input")
ANSWER_FIELDS = ("answer", "final_answer", "ground_truth", "target")
SOLUTION_FIELDS = ("solution", "output", "response")
ID_FIELDS = ("id", "unique_id", "problem_id", "idx")


class ProblemFileError(ValueError):
    """A problem file or one of its rows cannot be read; the message names the file, the row and the field."""


@dataclasses.dataclass(frozen=True)
class MathProblem:
    """One problem with its exact reference answer (bare LaTeX)."""

    task_id: str
    problem: str
    answer: str
    source: str = ""


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and value != value:  # NaN: an empty Parquet cell
        return False
    return not (isinstance(value, str) and not value.strip())


def _field(row: Mapping[str, Any], names: Sequence[str]) -> Any:
    lowered = {str(key).lower(): value for key, value in row.items()}
    for name in names:
        if name in lowered and _present(lowered[name]):
            return lowered[name]
    return None


def _plain(value: Any) -> Any:
    """Parquet's NumPy arrays of structs -> lists of dicts (JSON gives them already)."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _problem_text(value: Any, where: str) -> str:
    """The problem statement: a string, or the last user message of a chat message list (verl / TRL)."""
    value = _plain(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        users = [m for m in value if str(m.get("role", "")).lower() == "user"]
        if not users or not isinstance(users[-1].get("content"), str) or not users[-1]["content"].strip():
            raise ProblemFileError(f"{where}: the prompt message list has no user message with text content "
                                   f"(roles: {[m.get('role') for m in value]})")
        return users[-1]["content"]
    raise ProblemFileError(f"{where}: the problem field holds a {type(value).__name__}, not text or a chat message "
                           "list")


def _answer_text(row: Mapping[str, Any], where: str) -> str:
    answer = _field(row, ANSWER_FIELDS)
    if answer is None:
        reward_model = _plain(_field(row, ("reward_model",)))
        if isinstance(reward_model, Mapping) and _present(reward_model.get("ground_truth")):
            answer = reward_model["ground_truth"]
    if answer is None:
        solution = _field(row, SOLUTION_FIELDS)
        if solution is not None:
            answer = extract_boxed(str(solution))
            if answer is None:
                raise ProblemFileError(f"{where}: no answer field {ANSWER_FIELDS} and its solution has no "
                                       "\\boxed{...} answer")
    if answer is None:
        raise ProblemFileError(f"{where}: no answer: need one of {ANSWER_FIELDS}, reward_model.ground_truth (verl) "
                               f"or a solution with \\boxed{{}} in one of {SOLUTION_FIELDS}; fields are "
                               f"{sorted(map(str, row))}")
    answer = _plain(answer)
    if isinstance(answer, list | dict):
        raise ProblemFileError(f"{where}: the answer is a {type(answer).__name__} ({str(answer)[:80]}); expected one "
                               "value")
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    return str(answer).strip()


def _read_rows(path: pathlib.Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        try:
            return pd.read_parquet(path).to_dict(orient="records")
        except Exception as error:  # noqa: BLE001 - pyarrow raises many types; the user needs the file and cause
            raise ProblemFileError(f"{path}: not a readable Parquet file ({type(error).__name__}: {error})") from error
    text = path.read_text(encoding="utf-8")
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProblemFileError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from error
    elif suffix in (".jsonl", ".json"):
        rows = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ProblemFileError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
    else:
        raise ProblemFileError(f"{path}: unsupported extension {suffix!r}; use .jsonl, .json or .parquet")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ProblemFileError(f"{path}: row {number} is a {type(row).__name__}, not an object")
    return rows


def rows_to_problems(rows: Iterable[Mapping[str, Any]], set_name: str, source: str = "") -> list[MathProblem]:
    """Convert raw rows into problems (``source``: the file, for error messages).

    Raises:
      ProblemFileError: a row without a problem or an answer, naming the row (1-based) and the field.
    """
    problems, seen = [], {}
    for index, row in enumerate(rows):
        where = f"{source or set_name}: row {index + 1}"
        problem = _field(row, PROBLEM_FIELDS)
        if problem is None:
            raise ProblemFileError(f"{where}: no problem field (one of {PROBLEM_FIELDS}; a chat message list is "
                                   f"accepted for prompt); fields are {sorted(map(str, row))}")
        text = _problem_text(problem, where)
        answer = _answer_text(row, where)
        row_id = _field(row, ID_FIELDS)
        extra = _plain(_field(row, ("extra_info",)))
        if row_id is None and isinstance(extra, Mapping) and _present(extra.get("index")):
            row_id = extra["index"]
        task_id = f"{set_name}/{row_id if row_id is not None else index}"
        if task_id in seen:
            raise ProblemFileError(f"{where}: id {task_id!r} repeats row {seen[task_id]}; ids must be unique")
        seen[task_id] = index + 1
        problems.append(MathProblem(task_id, text, answer, set_name))
    return problems


def load_problem_file(path: str | pathlib.Path, set_name: str | None = None) -> list[MathProblem]:
    """Load one JSONL/JSON/Parquet file of problems.

    Args:
      path: the file.
      set_name: prefix of the task ids (default: the file's stem).

    Raises:
      FileNotFoundError: no such file.
      ProblemFileError: an unreadable file, an empty one, or a row without a problem or an answer.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"math problem file not found: {path}")
    problems = rows_to_problems(_read_rows(path), set_name or path.stem, str(path))
    if not problems:
        raise ProblemFileError(f"{path}: no rows")
    return problems


def training_subset(problems: Sequence[MathProblem], size: int, seed: int) -> list[MathProblem]:
    """A fixed random subset of ``size`` problems (all of them when there are fewer), in a seeded
    order."""
    if size <= 0:
        raise ValueError(f"train_size must be positive, got {size}")
    unique = list({problem.task_id: problem for problem in problems}.values())
    chosen = random.Random(seed).sample(unique, k=min(size, len(unique)))
    return sorted(chosen, key=lambda problem: problem.task_id)
