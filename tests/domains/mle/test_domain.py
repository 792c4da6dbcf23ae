"""The MLE Domain (render / grade / child / rewards) and the greedy-search scaffold with scripted policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exit_jax.domains.mle.competition import write_competition
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain
from exit_jax.domains.mle.scaffold import greedy_search
from exit_jax.types import Domain, Instance, improvement_reward


@pytest.fixture(scope="module")
def line_competition(tmp_path_factory):
    """y = 2 x0 - x1 exactly; a solution predicting c * (2 x0 - x1) has RMSE |1 - c| * rms(y)."""
    rng = np.random.RandomState(3)
    x = rng.randn(80, 2)
    y = 2 * x[:, 0] - x[:, 1]
    train = pd.DataFrame({"id": np.arange(50), "x0": x[:50, 0], "x1": x[:50, 1], "target": y[:50]})
    test = pd.DataFrame({"id": np.arange(50, 80), "x0": x[50:, 0], "x1": x[50:, 1]})
    answers = pd.DataFrame({"id": test["id"], "target": y[50:]})
    worst = float(np.sqrt(np.mean((y[50:] - y[:50].mean()) ** 2)))
    meta = {"metric": "rmse", "worst": worst, "best": 0.0, "id_column": "id", "target_columns": ["target"],
            "task": "regression"}
    root = tmp_path_factory.mktemp("line")
    return write_competition(root, "line-rmse", "# line\nPredict target from x0, x1.", train, test, answers,
                             answers.assign(target=0.0), meta)


def scaled_solution(scale: float, printed_validation: float) -> str:
    return f"""```python
import os
import pandas as pd
test = pd.read_csv(os.path.join(os.environ["PUBLIC_RESOURCE_PATH"], "test.csv"))
pd.DataFrame({{"id": test["id"], "target": {scale} * (2 * test["x0"] - test["x1"])}}).to_csv(
    "submission.csv", index=False)
print("validation_score: {printed_validation}")
```"""


def expected_normalized(competition, scale: float) -> float:
    """Independent reference: the RMSE of the scaled prediction, normalised with NumPy."""
    answers = pd.read_csv(competition.answers_path)
    test = pd.read_csv(competition.public_dir / "test.csv")
    rmse = np.sqrt(np.mean((scale * (2 * test["x0"] - test["x1"]) - answers["target"]) ** 2))
    return float(np.clip(1 - rmse / competition.worst, 0, 1))


@pytest.fixture(scope="module")
def python_domain(sandbox, line_competition):
    return MLEDomain(MLEConfig(extra_competitions=(str(line_competition.root),)), sandbox=sandbox)


@pytest.fixture(scope="module")
def compact_domain(sandbox, line_competition):
    config = MLEConfig(solution_format="compact", extra_competitions=(str(line_competition.root),))
    return MLEDomain(config, sandbox=sandbox)


def test_protocol_and_splits(python_domain):
    assert isinstance(python_domain, Domain)
    assert python_domain.name == "mle" and python_domain.multi_turn is False
    train, heldout = python_domain.task_ids("train"), python_domain.task_ids("heldout")
    assert "line-rmse" in train and len(train) >= 10 and len(heldout) >= 3
    assert not set(train) & set(heldout)
    with pytest.raises(ValueError):
        MLEConfig(solution_format="java")


def test_python_prompts_follow_the_template(python_domain):
    base = python_domain.render(python_domain.base_instance("line-rmse"))[0].content
    assert base.startswith("You are a Kaggle grandmaster")
    assert "Study the current version of solution.py" in base and "def main():" in base
    assert "# Task description" in base and "Predict target from x0, x1" in base
    assert "# Previews of files located at PUBLIC_RESOURCE_PATH" in base and "train.csv (50 rows)" in base
    order = [base.index(s) for s in ("Study the current", "Your goal is to improve", "# Task description",
                                      "# Previews", "triple-tick")]
    assert order == sorted(order)
    crashed = Instance("line-rmse", iterate=1, previous_response=scaled_solution(1, 0), mode="debug",
                       feedback="Traceback: ZeroDivisionError")
    debug = python_domain.render(crashed)[0].content
    assert "Your goal is to debug this python script" in debug and "ZeroDivisionError" in debug
    assert "2 * test[\"x0\"]" in debug
    diverge = python_domain.render(crashed.with_mode("diverge"))[0].content
    assert "radically different approach" in diverge


def test_compact_prompt_is_short(compact_domain):
    instance = Instance("line-rmse", iterate=2, previous_response="model=lin scale=std", mode="improve",
                        feedback="val=0.12")
    text = compact_domain.render(instance)[0].content
    assert len(text) < 300
    assert "line-rmse" in text and "mode improve" in text and "prev model=lin scale=std" in text
    assert "val=0.12" in text


def test_grade_rewards_and_children(python_domain, line_competition):
    base = python_domain.base_instance("line-rmse")
    improve = Instance("line-rmse", iterate=1, previous_response=scaled_solution(0.5, 0.5), mode="improve",
                       previous_score=0.4)
    diverge = improve.with_mode("diverge")
    responses = [scaled_solution(0.9, 0.1), scaled_solution(0.9, 0.1), scaled_solution(0.9, 0.1),
                 "I would use a random forest.", "```python\nraise ValueError('boom')\n```"]
    instances = [base, improve, diverge, improve, improve]
    grades = python_domain.grade(instances, responses)
    expected = expected_normalized(line_competition, 0.9)
    assert grades[0].score == pytest.approx(expected) and grades[0].reward == pytest.approx(expected)
    assert grades[1].reward == pytest.approx(max(0.0, (expected - 0.4) / 0.6))
    assert grades[1].reward == pytest.approx(improvement_reward(expected, 0.4))
    assert grades[2].reward == pytest.approx(expected)  # divergence uses the normalised score
    assert not grades[3].valid and grades[3].error == "unparseable" and grades[3].reward == 0.0
    assert not grades[4].valid and grades[4].error == "crash" and "boom" in grades[4].feedback
    assert grades[0].info["validation_score"] == pytest.approx(0.1)
    good_child = python_domain.child(improve, responses[1], grades[1])
    assert good_child.mode == "improve" and good_child.iterate == 2
    assert good_child.previous_score == pytest.approx(expected) and "validation_score" in good_child.feedback
    crash_child = python_domain.child(improve, responses[4], grades[4])
    assert crash_child.mode == "debug" and "boom" in crash_child.feedback
    debug_grade = python_domain.grade([crash_child], [scaled_solution(0.9, 0.1)])[0]
    assert debug_grade.reward == pytest.approx(expected)  # debug steps use the normalised score
    # Nothing from the private answers reaches the feedback: only the solution's own printout.
    assert str(round(expected, 4)) not in grades[0].feedback


def test_rollout_with_scripted_policy(compact_domain):
    episodes = compact_domain.rollout([compact_domain.base_instance("line-rmse")] * 2,
                                      lambda prompts: ["model=lin", "model=knn k=40"][: len(prompts)])
    assert [e.grade.valid for e in episodes] == [True, True]
    assert episodes[0].grade.score > 0.95 > episodes[1].grade.score  # a line is linear
    assert episodes[0].children[0].previous_response == "model=lin"
    assert episodes[0].messages[-1].content == "model=lin"
    future = compact_domain.submit_grade([compact_domain.base_instance("line-rmse")], ["model=lin"])
    assert future.result(timeout=120)[0].score == pytest.approx(episodes[0].grade.score)


def test_scaffold_keeps_best_by_validation(python_domain, line_competition):
    # (scale, printed validation RMSE): honest steps improve; the "liar" prints a great validation score for a
    # bad solution, so it is chosen although its test score is worse: the test score is never used to choose.
    script = [(0.2, 0.8), (0.5, 0.5), None, (0.8, 0.2), (0.6, 0.4), (0.95, 0.05), (0.3, 0.01)]
    seen_prompts = []

    def policy(prompts):
        seen_prompts.append(prompts[0][-1].content)
        step = script[len(seen_prompts) - 1]
        return ["```python\nraise RuntimeError('crash')\n```" if step is None else scaled_solution(*step)]

    result = greedy_search(python_domain, "line-rmse", policy, steps=len(script) - 1)
    tests = [s.test_normalized for s in result.steps]
    for step, scripted in zip(result.steps, script, strict=True):
        if scripted is not None:
            assert step.test_normalized == pytest.approx(expected_normalized(line_competition, scripted[0]))
    assert [s.mode for s in result.steps] == ["base", "improve", "improve", "debug", "improve", "improve", "improve"]
    assert "debug this python script" in seen_prompts[3] and "RuntimeError" in seen_prompts[3]
    best_vals = [s.best_validation for s in result.steps]
    assert all(b >= a for a, b in zip(best_vals[1:], best_vals[:-1], strict=False))  # RMSE never gets worse
    reported = [s.best_test_normalized for s in result.steps[:-1]]
    assert reported == [tests[0], tests[1], tests[1], tests[3], tests[3], tests[5]]
    assert all(b >= a for a, b in zip(reported, reported[1:], strict=False))
    # After step 4 (worse) the search improves the best (step 3), not the latest.
    assert "0.8 * (2" in seen_prompts[5]
    assert result.steps[-1].best_step == 6 and result.steps[-1].best_test_normalized == pytest.approx(tests[6])
