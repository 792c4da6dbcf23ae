"""Our verdict on a multi-turn trajectory: state reached and ground-truth results contained, per
user request.

For each evaluated request i (the paper's reward, notes §3.2, with bfcl-eval's semantics):

1. the model's calls for requests 0..i and the ground-truth calls for requests 0..i are executed in
  two separate
   sessions started from the task's initial configuration;
2. the request passes when (a) the public state of every API instance equals the ground truth's
  (``state_diff`` is
   empty) and (b) every ground-truth execution result of request i appears among the model's
   execution results so far (a multiset, order-free: the model may have fetched something earlier or
   in another order), and (c) the model made at least one parsed call in the request;
3. a request whose ground truth is empty (the model should not be able to act) is not checked, as in
  bfcl-eval.

``reward`` is 1.0 when every evaluated request passes (bfcl-eval's accuracy), ``total_return``
counts passing requests and ``first_turn_correct`` is request 0's verdict.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

from exit_jax.domains.tooluse.api_session import ApiSession, CallRecord, state_diff
from exit_jax.domains.tooluse.bfcl_data import BfclTask, load_task
from exit_jax.domains.tooluse.calls import ParsedCall, format_python_call, parse_call_string


@dataclasses.dataclass
class RequestResult:
    """The verdict on one user request."""

    request_index: int
    passed: bool
    checked: bool
    calls: list[str]
    results: list[str]
    state_match: bool
    missing_results: list[str]
    state_diff: list[dict[str, Any]]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrajectoryScore:
    """The verdict on a whole trajectory."""

    reward: float
    total_return: float
    first_turn_correct: bool
    requests: list[RequestResult]

    def to_json(self) -> dict[str, Any]:
        failing = next((request for request in self.requests if not request.passed), None)
        return {
            "reward": self.reward,
            "total_return": self.total_return,
            "first_turn_correct": self.first_turn_correct,
            "per_turn": [request.to_json() for request in self.requests],
            "state_diff": failing.state_diff if failing else [],
        }


@functools.cache
def _ground_truth_trace(task_id: str) -> tuple[tuple[dict[str, Any], tuple[str, ...]], ...]:
    """Per request: (plain state after the ground-truth calls so far, that request's ground-truth
    results)."""
    task = load_task(task_id)
    session = ApiSession(task)
    trace = []
    for calls in task.ground_truth:
        results = []
        for call_text in calls:
            call = parse_call_string(call_text)
            results.append(session.execute(call.name, call.args, call.kwargs).result)
        trace.append((session.snapshot(), tuple(results)))
    return tuple(trace)


def execute_request_calls(
    session: ApiSession, calls: Sequence[ParsedCall | str]
) -> tuple[list[str], list[CallRecord | None], list[str]]:
    """Run one request's calls; returns (call strings of parsed calls, records, parse errors)."""
    call_strings, records, errors = [], [], []
    for call in calls:
        if isinstance(call, str):
            try:
                call = parse_call_string(call)
            except ValueError as error:
                errors.append(str(error))
                records.append(None)
                continue
        call_strings.append(format_python_call(call.name, call.args, call.kwargs))
        records.append(session.execute(call.name, call.args, call.kwargs))
    return call_strings, records, errors


def _missing(expected: Sequence[str], produced: Sequence[str]) -> list[str]:
    remaining = collections.Counter(produced)
    missing = []
    for item in expected:
        if remaining[item] > 0:
            remaining[item] -= 1
        else:
            missing.append(item)
    return missing


def score_trajectory(
    task: BfclTask | str,
    per_request_calls: Sequence[Sequence[ParsedCall | str]],
    num_requests: int | None = None,
) -> TrajectoryScore:
    """Score the calls a model made, request by request.

    Args:
      task: the task or its id.
      per_request_calls: for each user request, the calls made while serving it (``ParsedCall`` or
      call strings in
        JSON or Python form). Missing requests count as no calls.
      num_requests: how many requests to evaluate (1 = first request only, as in training); default
      all.
    """
    task = load_task(task) if isinstance(task, str) else task
    total = len(task.ground_truth)
    num_requests = total if num_requests is None else max(1, min(num_requests, total))
    trace = _ground_truth_trace(task.task_id)
    session = ApiSession(task)
    all_results: list[str] = []
    requests = []
    for index in range(num_requests):
        calls = per_request_calls[index] if index < len(per_request_calls) else ()
        call_strings, records, parse_errors = execute_request_calls(session, calls)
        results = [record.result for record in records if record is not None]
        all_results.extend(results)
        expected_state, expected_results = trace[index]
        if not task.ground_truth[index]:
            requests.append(RequestResult(index, True, False, call_strings, results, True, [], []))
            continue
        differences = state_diff(session.snapshot(), expected_state)
        missing = _missing(expected_results, all_results)
        error = None
        if not call_strings:
            error = "no parsed call in a request that needs one"
        elif differences:
            error = "state differs from the ground truth"
        elif missing:
            error = "ground-truth results missing from the model's results"
        if parse_errors and error:
            error += f" (unparsed calls: {parse_errors})"
        requests.append(
            RequestResult(
                index,
                error is None,
                True,
                call_strings,
                results,
                not differences,
                missing,
                differences,
                error,
            )
        )
    passed = [request.passed for request in requests]
    return TrajectoryScore(
        reward=1.0 if all(passed) else 0.0,
        total_return=float(sum(passed)),
        first_turn_correct=passed[0],
        requests=requests,
    )
