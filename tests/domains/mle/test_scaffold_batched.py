"""Batched greedy search: every chain advances together, with the same per-chain results as a one-chain search.

The reference is a plain sequential implementation of the documented rules written here (draft; debug the latest
crash up to 3 times in a row; else improve the best valid node by its own validation score; redraft when nothing is
valid), run chain by chain with a deterministic fake policy on the real ``MLEDomain`` (compact specs, sandbox).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from exit_jax.domains.mle.competition import write_competition
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain
from exit_jax.domains.mle.scaffold import greedy_search, greedy_search_many
from exit_jax.evaluation import evaluate

SPECS = ("model=lin", "model=lin scale=std", "model=knn k=5", "model=knn scale=std k=20 w=dist",
         "model=lin feat=poly2", "model=rf n=10 depth=3", "model=lin sel=k5", "no spec here")
TASKS = ("line-rmse", "sign-auc")
SAMPLES = 3
STEPS = 5


def respond(prompt: str, sample: int) -> str:
    """Deterministic fake policy: a spec chosen by hashing the prompt and the chain's sample index.

    Sample 2 of ``sign-auc`` always writes garbage, so that chain exhausts its debug attempts and redrafts.
    """
    if sample == 2 and "sign-auc" in prompt:
        return "I am not sure."
    digest = hashlib.sha256(f"{sample}|{prompt}".encode()).digest()
    return SPECS[digest[0] % len(SPECS)]


@pytest.fixture(scope="module")
def two_competitions(tmp_path_factory):
    root = tmp_path_factory.mktemp("batched")
    rng = np.random.RandomState(11)
    x = rng.randn(90, 3)
    ids = np.arange(90)
    y_line = 2 * x[:, 0] - x[:, 1] + 0.3 * rng.randn(90)
    y_sign = (x[:, 0] + x[:, 1] * x[:, 2] + 0.5 * rng.randn(90) > 0).astype(int)
    for name, y, metric, worst, best, task in (
            ("line-rmse", y_line, "rmse", float(np.sqrt(np.mean((y_line[60:] - y_line[:60].mean()) ** 2))), 0.0,
             "regression"),
            ("sign-auc", y_sign, "auc", 0.5, 1.0, "binary")):
        frame = pd.DataFrame({"id": ids, "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2]})
        train = frame.iloc[:60].assign(target=y[:60])
        test = frame.iloc[60:].reset_index(drop=True)
        answers = pd.DataFrame({"id": test["id"], "target": y[60:]})
        meta = {"metric": metric, "worst": worst, "best": best, "id_column": "id", "target_columns": ["target"],
                "task": task, "split": "heldout"}
        write_competition(root, name, f"# {name}\nPredict target.", train, test, answers,
                          answers.assign(target=0.5 if metric == "auc" else 0.0), meta)
    return [str(root / name) for name in TASKS]


@pytest.fixture(scope="module")
def domain(sandbox, two_competitions):
    config = MLEConfig(solution_format="compact", extra_competitions=tuple(two_competitions))
    return MLEDomain(config, sandbox=sandbox)


def reference_search(domain, task_id, sample, steps, max_debug=3):
    """The documented greedy search, one chain, written independently of scaffold.py."""
    higher_is_better = domain.competition(task_id).metric in ("auc", "accuracy")
    best = None  # (step, child, validation, test)
    latest = None
    debug_run = 0
    rows = []
    for step in range(steps + 1):
        if step == 0:
            instance = domain.base_instance(task_id)
        elif latest.mode == "debug" and debug_run < max_debug:
            instance = latest
        elif best is not None:
            instance = best[1]
        else:
            instance = domain.base_instance(task_id)
        response = respond(domain.render(instance)[0].content, sample)
        grade = domain.grade([instance], [response])[0]
        latest = domain.child(instance, response, grade)
        debug_run = debug_run + 1 if instance.mode == "debug" else 0
        validation = grade.info.get("validation_score")
        if grade.valid and validation is not None and (
                best is None or (validation > best[2] if higher_is_better else validation < best[2])):
            best = (step, latest, validation, grade.score)
        rows.append((instance.mode, response, grade.valid, validation, grade.score,
                     best[0] if best else None, best[3] if best else 0.0))
    return rows


def as_rows(result):
    return [(s.mode, s.response, s.valid, s.validation_score, s.test_normalized, s.best_step,
             s.best_test_normalized) for s in result.steps]


@pytest.fixture(scope="module")
def batched_run(domain):
    policy_calls, grade_calls = [], []
    grade = domain.grade

    def counting_grade(instances, responses):
        grade_calls.append(len(instances))
        return grade(instances, responses)

    def policy_fn(conversations):
        policy_calls.append(len(conversations))
        # Chains are task-major: position i is sample i % SAMPLES of its task.
        return [respond(c[-1].content, i % SAMPLES) for i, c in enumerate(conversations)]

    domain.grade = counting_grade
    try:
        results = greedy_search_many(domain, TASKS, policy_fn, steps=STEPS, num_samples=SAMPLES)
    finally:
        del domain.grade
    return results, policy_calls, grade_calls


def test_one_policy_and_one_grade_call_per_step_with_all_chains(batched_run):
    results, policy_calls, grade_calls = batched_run
    assert policy_calls == [len(TASKS) * SAMPLES] * (STEPS + 1)
    assert grade_calls == [len(TASKS) * SAMPLES] * (STEPS + 1)
    assert [(r.task_id, r.sample) for r in results] == [(t, s) for t in TASKS for s in range(SAMPLES)]


def test_batched_equals_chain_by_chain(domain, batched_run):
    results, _, _ = batched_run
    for result in results:
        expected = reference_search(domain, result.task_id, result.sample, STEPS)
        assert as_rows(result) == expected, (result.task_id, result.sample)
        single = greedy_search(domain, result.task_id, lambda ps, s=result.sample: [respond(ps[0][-1].content, s)],
                               steps=STEPS)
        assert as_rows(single) == expected
    modes = {s.mode for r in results for s in r.steps}
    assert modes == {"base", "improve", "debug"}  # the fake policy exercises every branch
    garbage = results[TASKS.index("sign-auc") * SAMPLES + 2]
    assert [s.mode for s in garbage.steps] == ["base", "debug", "debug", "debug", "base", "debug"]  # redraft
    assert all(s.best_step is None and s.best_test_normalized == 0.0 for s in garbage.steps)
    assert len({tuple(as_rows(r)) for r in results}) > len(TASKS)  # the samples of a task differ


def test_evaluate_writes_traces_and_extra_ceilings(domain):
    written = []

    def policy_fn(conversations):
        responses = [respond(c[-1].content, i % 2) for i, c in enumerate(conversations)]
        written.append(responses)
        return responses

    result = evaluate(domain, policy_fn, list(TASKS), K=2, num_samples=2)
    assert set(result["traces"]) == set(TASKS)
    for t, task_id in enumerate(TASKS):
        chains = result["traces"][task_id]
        assert len(chains) == 2 and all(len(chain) == 3 for chain in chains)
        for sample, chain in enumerate(chains):
            assert [row["response"] for row in chain] == [written[k][t * 2 + sample] for k in range(3)]
            assert {"mode", "valid", "validation_score", "test_normalized", "best_step"} <= set(chain[0])
        best_so_far = np.array([[row["best_test_normalized"] for row in chain] for chain in chains])
        assert result["per_task"][task_id] == pytest.approx(best_so_far.mean(axis=0).tolist())
    assert result["ceiling"] == {"line-rmse": 1.0, "sign-auc": 1.0}  # no reference for extra competitions
