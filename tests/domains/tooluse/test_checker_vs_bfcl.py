"""Our trajectory verdict against bfcl-eval's own multi-turn checker, on every multi_turn_base task.

For each of the 200 tasks: the ground-truth calls (must score 1.0 in both), and three corruptions of
them: a dropped call, a wrong argument value, an extra state-changing call. The verdicts must agree
on every one.
"""

import pytest

from exit_jax.domains.tooluse.api_session import ApiSession
from exit_jax.domains.tooluse.bfcl_data import load_tasks
from exit_jax.domains.tooluse.calls import parse_python_call
from exit_jax.domains.tooluse.checker import score_trajectory
from tests.domains.tooluse.bfcl_reference import (
    bfcl_checker_verdict,
    drop_call,
    state_changing_extra_call,
    wrong_argument,
)

TASKS = load_tasks("multi_turn_base")


def test_all_two_hundred_tasks_are_present():
    assert len(TASKS) == 200


@pytest.mark.parametrize("task_id", list(TASKS))
def test_verdict_agrees_with_bfcl_checker(task_id):
    task = TASKS[task_id]
    ground_truth = [list(calls) for calls in task.ground_truth]
    ours = score_trajectory(task, ground_truth)
    assert ours.reward == 1.0 and ours.total_return == len(task.ground_truth)
    assert bfcl_checker_verdict(task, ground_truth)

    dropped = drop_call(task)
    assert (score_trajectory(task, dropped).reward == 1.0) == bfcl_checker_verdict(task, dropped)
    assert score_trajectory(task, dropped).reward == 0.0

    wrong = wrong_argument(task)
    assert (score_trajectory(task, wrong).reward == 1.0) == bfcl_checker_verdict(task, wrong)

    extra = state_changing_extra_call(task)
    if extra is not None:
        assert (score_trajectory(task, extra).reward == 1.0) == bfcl_checker_verdict(task, extra)
        assert score_trajectory(task, extra).reward == 0.0


def test_ground_truth_calls_execute_without_errors():
    """Every ground-truth call runs cleanly, except one that breaks its own schema (a string ticket
    id where the schema says integer): our executor rejects it as a wrong argument type, as it would
    for the policy. The task still scores 1.0 in both checkers because the ground truth's results
    come from the same executor."""
    failures = []
    for task in TASKS.values():
        session = ApiSession(task)
        for calls in task.ground_truth:
            for text in calls:
                call = parse_python_call(text)
                record = session.execute(call.name, call.args, call.kwargs)
                if not record.ok:
                    failures.append((task.task_id, text, record.result))
    assert [(task_id, text) for task_id, text, _ in failures] == [
        ("multi_turn_base_173", "close_ticket(ticket_id='ticket_001')")
    ]
    assert "expected integer, got str" in failures[0][2]


def test_most_tasks_have_a_state_changing_extra_call():
    assert sum(state_changing_extra_call(task) is not None for task in TASKS.values()) >= 190


@pytest.mark.parametrize("category", ["multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"])
def test_other_categories_agree_on_a_sample(category):
    """Every 8th task of the other multi-turn categories: ground truth and a dropped call."""
    tasks = list(load_tasks(category).values())[::8]
    for task in tasks:
        ground_truth = [list(calls) for calls in task.ground_truth]
        assert score_trajectory(task, ground_truth).reward == 1.0
        assert bfcl_checker_verdict(task, ground_truth)
        dropped = drop_call(task)
        assert (score_trajectory(task, dropped).reward == 1.0) == bfcl_checker_verdict(task, dropped)
