"""Grading: submission checks, the metric against private answers, normalisation, and the cached evaluator.

``check_and_score`` refuses (never silently scores) a submission with wrong columns, a wrong number of rows, missing,
duplicate or unknown ids, or non-numeric / non-finite predictions where numbers are needed. ``Evaluator`` runs solution
code through the ``Sandbox``, grades it, and caches results by (competition, code hash). The feedback it returns is
the solution's own output (its validation score included) and, for crashes, the trace's tail: nothing computed from
the private answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from exit_jax.domains.mle.competition import Competition, score_aligned
from exit_jax.domains.mle.sandbox import ExecutionResult, Sandbox, SandboxLimits

_VALIDATION = re.compile(r"validation[_ ]score\s*[:=]\s*([-+0-9.eEinfa]+)", re.I)


class SubmissionError(ValueError):
    """The submission cannot be scored; the message says why."""


def check_and_score(competition: Competition, submission_path: str) -> float:
    """The raw metric of a submission file against the competition's private answers.

    Raises:
      SubmissionError: unreadable CSV, wrong columns, wrong rows or ids, or unusable values.
    """
    answers = pd.read_csv(competition.answers_path)
    try:
        submission = pd.read_csv(submission_path)
    except Exception as err:  # noqa: BLE001 - any parse failure is a malformed submission
        raise SubmissionError(f"submission.csv is not a readable CSV: {err}") from err
    expected = [competition.id_column, *competition.target_columns, *competition.passthrough_columns]
    if sorted(map(str, submission.columns)) != sorted(expected):
        raise SubmissionError(f"submission columns {list(submission.columns)[:10]} != expected {expected}")
    if len(submission) != len(answers):
        raise SubmissionError(f"submission has {len(submission)} rows, expected {len(answers)}")
    ids = pd.Index(submission[competition.id_column].astype(str))
    if ids.has_duplicates:
        raise SubmissionError(f"duplicate ids in submission, e.g. {ids[ids.duplicated()][0]}")
    answer_ids = answers[competition.id_column].astype(str)
    # Vectorised (a Python set of pandas' Arrow-backed strings cost ~6 ms per submission): with as many unique ids
    # as answers, the ids are the test ids exactly when every test id is found among them.
    rows = ids.get_indexer(answer_ids)
    if (rows < 0).any():
        missing = sorted(answer_ids[rows < 0])[:3]
        raise SubmissionError(f"submission ids do not match the test ids (missing e.g. {missing})")
    targets = list(competition.target_columns)
    predictions = submission[targets].iloc[rows].reset_index(drop=True)
    truth = answers[targets].reset_index(drop=True)
    if competition.metric != "accuracy":
        predictions = pd.DataFrame({c: pd.to_numeric(predictions[c], errors="coerce") for c in targets})
        values = predictions.to_numpy(float)
        if not np.isfinite(values).all():  # NaN (missing or non-numeric) is not finite either
            raise SubmissionError("submission has missing, non-numeric or infinite predictions")
        if competition.metric == "logloss" and (values < 0).any():
            raise SubmissionError("log-loss submission has negative probabilities")
    return score_aligned(competition, truth, predictions)


def parse_validation_score(output: str) -> float | None:
    """The last ``validation_score: <float>`` the solution printed (None when absent or not finite)."""
    matches = _VALIDATION.findall(output)
    for text in reversed(matches):
        try:
            value = float(text)
        except ValueError:
            continue
        if np.isfinite(value):
            return value
    return None


@dataclasses.dataclass
class SolutionResult:
    """The verdict on one solution.

    Attributes:
      valid: ran to completion and wrote a well-formed submission.
      score: the raw metric on the private test answers (None when invalid).
      normalized_score: score mapped to [0, 1] with the competition's (worst, best); 0 when invalid.
      validation_score: the score the solution printed for its own split of train (policy-visible).
      feedback: the solution's truncated output and, when it failed, the trace / reason (policy-visible).
      error: a short reason when invalid (timeout, crash, memory_limit, missing_submission, ...).
      runtime_s: wall-clock seconds in the sandbox.
      isolation: the isolation the sandbox had in force.
    """

    valid: bool
    score: float | None
    normalized_score: float
    validation_score: float | None
    feedback: str
    error: str | None
    runtime_s: float
    isolation: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _failure_reason(run: ExecutionResult) -> str | None:
    """A short machine-readable reason for a failed run (None when it exited cleanly)."""
    if run.reason is not None:
        return run.reason
    if run.exit_code == 0:
        return None
    trace = run.stderr
    if run.memory_limit_hit or "MemoryError" in trace or "Cannot allocate memory" in trace:
        return "memory_limit"
    if "Resource temporarily unavailable" in trace and ("fork" in trace or "thread" in trace):
        return "process_limit"
    if "No space left on device" in trace or "File too large" in trace or run.exit_code in (-25, 153):
        return "disk_limit"
    if run.exit_code in (-24, 152):  # SIGXCPU
        return "cpu_limit"
    if run.exit_code is not None and (run.exit_code < 0 or run.exit_code > 128):
        return "killed_by_signal"
    if "left background processes running" in trace:
        return "background_processes"
    if "sandbox setup failed" in trace:
        return "sandbox_error"
    return "crash"


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))(?::\s?(.*))?$")


def failure_signature(result: SolutionResult) -> str | None:
    """How an invalid run failed, for spotting a batch that failed all the same way: the exception of a crash
    (``ModuleNotFoundError: No module named 'x'``) or ``sandbox_error: ...``; None for valid runs and for other
    reasons (timeouts, malformed submissions: the solutions' own doing, not an environment's)."""
    if result.valid or result.error not in ("crash", "sandbox_error"):
        return None
    lines = [line.strip() for line in result.feedback.splitlines() if line.strip()]
    if result.error == "sandbox_error":
        return "sandbox_error: " + (lines[-1] if lines else "")
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line)
        if match:
            return match.group(1) + (f": {match.group(2)}" if match.group(2) else "")
    return None


def _feedback(run: ExecutionResult, reason: str | None, limit: int = 4000) -> str:
    parts = [run.stdout.strip()[-limit:]]
    if reason is not None:
        parts.append(f"[{reason}]")
        if run.stderr.strip():
            parts.append(run.stderr.strip()[-limit:])
    return "\n".join(p for p in parts if p)


class Evaluator:
    """Sandbox + grader + result cache keyed by (competition name, sha256 of the code)."""

    def __init__(self, sandbox: Sandbox, cache_size: int = 4096):
        self.sandbox = sandbox
        self.cache_size = cache_size
        self._cache: dict[tuple[str, str], SolutionResult] = {}
        self._lock = threading.Lock()

    def evaluate(self, competition: Competition, code: str, limits: SandboxLimits | None = None) -> SolutionResult:
        """Run and grade one solution (``limits`` overrides the sandbox's for this run)."""
        key = (competition.name, hashlib.sha256(code.encode()).hexdigest(), repr(limits))
        with self._lock:
            if key in self._cache:
                return dataclasses.replace(self._cache[key])
        run = self.sandbox.run(code, competition.public_dir, limits)
        result = self._grade(competition, run)
        with self._lock:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = result
        return dataclasses.replace(result)

    def evaluate_many(self, competitions: Sequence[Competition], codes: Sequence[str]) -> list[SolutionResult]:
        """Evaluate in parallel on the sandbox pool; results in input order.

        A (competition, code) pair that occurs more than once in the batch runs once, and its repeats get copies of
        that result, as a later call gets them from the cache (a GRPO group's samples often write the same spec).
        """
        pairs = list(zip(competitions, codes, strict=True))
        first: dict[tuple[str, str], int] = {}
        for index, (competition, code) in enumerate(pairs):
            first.setdefault((competition.name, code), index)
        unique = list(first.values())
        ran = dict(zip(unique, self.sandbox._executor.map(lambda i: self.evaluate(*pairs[i]), unique), strict=True))
        return [ran[index] if index in ran else dataclasses.replace(ran[first[(competition.name, code)]])
                for index, (competition, code) in enumerate(pairs)]

    @staticmethod
    def _grade(competition: Competition, run: ExecutionResult) -> SolutionResult:
        reason = _failure_reason(run)
        validation = parse_validation_score(run.stdout)
        score = None
        if reason is None and run.submission_error is not None:
            reason = "missing_submission" if "no submission" in run.submission_error else "malformed_submission"
            run.stderr = (run.stderr + "\n" + run.submission_error).strip()
        if reason is None:
            try:
                score = check_and_score(competition, run.submission_path)
            except SubmissionError as err:
                reason = "malformed_submission"
                run.stderr = (run.stderr + "\n" + str(err)).strip()
        if run.submission_path:
            try:
                os.unlink(run.submission_path)
            except OSError:
                pass
        valid = reason is None
        return SolutionResult(
            valid=valid, score=score, normalized_score=competition.normalise(score) if valid else 0.0,
            validation_score=validation, feedback=_feedback(run, reason), error=reason,
            runtime_s=run.runtime_s, isolation=run.isolation)
