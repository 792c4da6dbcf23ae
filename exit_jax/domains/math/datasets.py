"""Loaders for math problem files a user already has: JSONL, JSON and Parquet, in the shapes of
common sets.

Recognised field names (case-insensitive), first match wins:

- problem: ``problem``, ``question``, ``prompt``, ``input`` (MATH, DeepScaleR, NuminaMath, AIME
  ``Problem``).
- answer: ``answer``, ``final_answer``, ``ground_truth``, ``target`` (DeepScaleR, MATH500, AIME/AMC
  ``Answer``);
  when none is present the last ``\\boxed{...}`` of ``solution`` / ``output`` is used (MATH,
  NuminaMath).
- id: ``id``, ``unique_id``, ``problem_id``, ``idx``; otherwise ``<set name>/<row index>``.

Rows with no problem or no recoverable answer are skipped and counted, so a messy file still loads;
a file that yields no problem at all is an error naming the file.
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


@dataclasses.dataclass(frozen=True)
class MathProblem:
    """One problem with its exact reference answer (bare LaTeX)."""

    task_id: str
    problem: str
    answer: str
    source: str = ""


def _field(row: Mapping[str, Any], names: Sequence[str]) -> Any:
    lowered = {str(key).lower(): value for key, value in row.items()}
    for name in names:
        value = lowered.get(name)
        if value is not None and str(value).strip() != "" and str(value) != "nan":
            return value
    return None


def _read_rows(path: pathlib.Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict(orient="records")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json" and text.lstrip().startswith("["):
        return list(json.loads(text))
    if suffix in (".jsonl", ".json"):
        rows = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
        return rows
    raise ValueError(f"{path}: unsupported extension {suffix!r}; use .jsonl, .json or .parquet")


def rows_to_problems(rows: Iterable[Mapping[str, Any]], set_name: str) -> tuple[list[MathProblem], int]:
    """Convert raw rows into problems; returns (problems, number of rows skipped)."""
    problems, skipped = [], 0
    for index, row in enumerate(rows):
        problem = _field(row, PROBLEM_FIELDS)
        answer = _field(row, ANSWER_FIELDS)
        if answer is None:
            solution = _field(row, SOLUTION_FIELDS)
            answer = extract_boxed(str(solution)) if solution is not None else None
        if problem is None or answer is None or not str(answer).strip():
            skipped += 1
            continue
        row_id = _field(row, ID_FIELDS)
        task_id = f"{set_name}/{row_id if row_id is not None else index}"
        problems.append(MathProblem(task_id, str(problem), str(answer).strip(), set_name))
    return problems, skipped


def load_problem_file(path: str | pathlib.Path, set_name: str | None = None) -> list[MathProblem]:
    """Load one JSONL/JSON/Parquet file of problems.

    Args:
      path: the file.
      set_name: prefix of the task ids (default: the file's stem).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"math problem file not found: {path}")
    problems, skipped = rows_to_problems(_read_rows(path), set_name or path.stem)
    if not problems:
        raise ValueError(
            f"{path}: no usable rows ({skipped} skipped); need a problem field "
            f"{PROBLEM_FIELDS} and an answer "
            f"field {ANSWER_FIELDS} or a solution with \\boxed{{}}"
        )
    return problems


def training_subset(problems: Sequence[MathProblem], size: int, seed: int) -> list[MathProblem]:
    """A fixed random subset of ``size`` problems (all of them when there are fewer), in a seeded
    order."""
    if size <= 0:
        raise ValueError(f"train_size must be positive, got {size}")
    unique = list({problem.task_id: problem for problem in problems}.values())
    chosen = random.Random(seed).sample(unique, k=min(size, len(unique)))
    return sorted(chosen, key=lambda problem: problem.task_id)
