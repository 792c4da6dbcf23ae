"""Test helpers: bfcl-eval's own multi-turn checker as the reference, and trajectory corruptions."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import mpmath

from exit_jax.domains.tooluse.api_session import ApiSession
from exit_jax.domains.tooluse.bfcl_data import BfclTask
from exit_jax.domains.tooluse.calls import format_python_call, parse_python_call

_RUN_COUNTER = itertools.count()

# Calls that change the state of each class when they succeed (tried in order; MathAPI is
# stateless).
EXTRA_STATE_CHANGING_CALLS: dict[str, tuple[str, ...]] = {
    "GorillaFileSystem": ("mkdir(dir_name='zz_extra_dir')", "touch(file_name='zz_extra.txt')"),
    "MessageAPI": ("add_contact(user_name='zz_extra_user')",),
    "TwitterAPI": ("authenticate_twitter(username='zz_extra', password='zz')",),
    "TradingBot": ("trading_logout()", "fund_account(amount=1.0)"),
    "TicketAPI": ("logout()", "ticket_login(username='zz_extra', password='zz')"),
    "TravelAPI": (
        "authenticate_travel(client_id='zz', client_secret='zz', refresh_token='zz',"
        " grant_type='read',"
        " user_first_name='Zz', user_last_name='Zz')",
    ),
    "VehicleControlAPI": (
        "fillFuelTank(fuelAmount=0.5)",
        "setHeadlights(mode='on')",
        "setHeadlights(mode='off')",
    ),
}


def bfcl_checker_verdict(task: BfclTask, per_request_calls: list[list[str]]) -> bool:
    """bfcl-eval's multi_turn_checker on Python call strings, one call per model step."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    test_entry = {
        "id": task.task_id,
        "initial_config": copy.deepcopy(task.initial_config),
        "involved_classes": list(task.involved_classes),
    }
    decoded = [[[call] for call in calls] for calls in per_request_calls]
    # The checker caches API instances in its module globals by model name: a fresh name per run
    # keeps runs apart.
    model_name = f"exit_jax_reference_{next(_RUN_COUNTER)}"
    # Its MathAPI leaves mpmath's global precision wherever a call set it; put it back for the rest
    # of the tests.
    saved_precision = mpmath.mp.dps
    try:
        result = multi_turn_checker(
            decoded,
            [list(calls) for calls in task.ground_truth],
            test_entry,
            task.category,
            model_name,
        )
    finally:
        mpmath.mp.dps = saved_precision
    return bool(result["valid"])


def _wrong_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.0
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    return value


def drop_call(task: BfclTask) -> list[list[str]] | None:
    """The ground truth without the last call of its first non-empty request."""
    calls = [list(request) for request in task.ground_truth]
    for request in calls:
        if request:
            request.pop()
            return calls
    return None


def wrong_argument(task: BfclTask) -> list[list[str]] | None:
    """The ground truth with the first argument of the first call that has one changed (type
    kept)."""
    calls = [list(request) for request in task.ground_truth]
    for request in calls:
        for position, text in enumerate(request):
            call = parse_python_call(text)
            if call.kwargs:
                key = next(iter(call.kwargs))
                kwargs = {**call.kwargs, key: _wrong_value(call.kwargs[key])}
                request[position] = format_python_call(call.name, call.args, kwargs)
                return calls
            if call.args:
                args = (_wrong_value(call.args[0]), *call.args[1:])
                request[position] = format_python_call(call.name, args, call.kwargs)
                return calls
    return None


def state_changing_extra_call(task: BfclTask) -> list[list[str]] | None:
    """The ground truth plus one extra call that succeeds and changes the final state, or None if no
    candidate does."""
    for class_name in task.involved_classes:
        for candidate in EXTRA_STATE_CHANGING_CALLS.get(class_name, ()):
            session = ApiSession(task)
            for request in task.ground_truth:
                for text in request:
                    call = parse_python_call(text)
                    session.execute(call.name, call.args, call.kwargs)
            before = session.snapshot()
            call = parse_python_call(candidate)
            record = session.execute(call.name, call.args, call.kwargs)
            if record.ok and "error" not in record.result and session.snapshot() != before:
                return extra_call(task, candidate)
    return None


def extra_call(task: BfclTask, candidate: str) -> list[list[str]]:
    """The ground truth with ``candidate`` appended to its last non-empty request."""
    calls = [list(request) for request in task.ground_truth]
    last = max(index for index, request in enumerate(calls) if request)
    calls[last].append(candidate)
    return calls
