"""Warm-start demonstrations of the math domain: training problems only, gradable answers, the fallible teacher's
rates, and the domain's own improve / diverge prompts."""

import dataclasses
import pathlib
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from exit_jax.domains.math import MathDomain
from exit_jax.domains.math.demonstrations import KIND_WEIGHTS, near_miss
from exit_jax.domains.math.grading import extract_boxed
from exit_jax.domains.math.prompts import COMPACT_DIVERGE, COMPACT_IMPROVE, COMPACT_REQUEST
from tests.domains.math.test_domain import _reference_answer

COUNT = 2000


@pytest.fixture(scope="module")
def domain():
    return MathDomain({"train_size": 200, "procedural_heldout_size": 100, "prompt_style": "compact", "seed": 3})


@pytest.fixture(scope="module")
def demos(domain):
    return domain.demonstrations(COUNT, np.random.default_rng(11))


def _value(response):
    """The boxed answer's exact value (every demonstration is a single box around an integer or a fraction)."""
    content = extract_boxed(response)
    assert content is not None and response == f"\\boxed{{{content}}}", response
    return Fraction(content)


def test_no_heldout_problem_ever_appears(domain, demos):
    heldout_ids = set(domain.task_ids("heldout"))
    heldout_texts = {domain.problem(t).problem for t in heldout_ids}
    train_ids = set(domain.task_ids("train"))
    for instance, _ in demos:
        assert instance.task_id in train_ids and instance.task_id not in heldout_ids
        assert domain.problem(instance.task_id).problem not in heldout_texts
    # The draw covers the training set broadly, so "never held-out" is not an accident of a few problems.
    assert len({instance.task_id for instance, _ in demos}) > 0.9 * len(train_ids)


def test_answers_grade_as_their_exact_value_says(domain, demos):
    """A demonstration is right exactly when its boxed value equals Python's exact arithmetic on the problem text, and
    the domain's grader (math-verify) agrees on every one, in both grading settings."""
    instances = [instance for instance, _ in demos[:400]]
    responses = [response for _, response in demos[:400]]
    right = [_value(r) == _reference_answer(domain.problem(i.task_id).problem) for i, r in demos[:400]]
    assert 0 < sum(right) < len(right)
    assert [g.reward for g in domain.grade(instances, responses)] == [float(x) for x in right]
    boxed_only = MathDomain(dataclasses.replace(domain.config, prompt_style="chat"))
    assert boxed_only.require_boxed
    assert [g.reward for g in boxed_only.grade(instances, responses)] == [float(x) for x in right]


def test_hand_computed_near_misses():
    rng = np.random.default_rng(0)
    misses = {near_miss("92", rng) for _ in range(200)}
    assert misses == {"82", "90", "91", "93", "94", "102"}
    # 5/6 with its numerator moved by 1, 2 or 10, written reduced: 4/6 = 2/3, 3/6 = 1/2, 15/6 = 5/2, ...
    misses = {near_miss("5/6", rng) for _ in range(200)}
    assert misses == {"-5/6", "1/2", "2/3", "1", "7/6", "5/2"}
    assert near_miss("-3", rng) != "-3"


def test_kinds_mix_and_prompts(domain, demos):
    counts = Counter(instance.mode for instance, _ in demos)
    assert set(counts) == set(KIND_WEIGHTS) == {"base", "improve", "diverge"}
    for kind, weight in KIND_WEIGHTS.items():  # binomial sd at n = 2000 is at most 0.011
        assert abs(counts[kind] / COUNT - weight) < 0.05, counts
    for instance, _ in demos:
        problem = domain.problem(instance.task_id).problem
        text = domain.render(instance)[0].content
        if instance.mode == "base":
            assert instance.previous_response is None and text == COMPACT_REQUEST.format(problem=problem)
            continue
        assert (instance.iterate, instance.depth) == (1, 1)
        template = COMPACT_IMPROVE if instance.mode == "improve" else COMPACT_DIVERGE
        assert text == template.format(problem=problem, previous_response=instance.previous_response)
        # previous_score is the grader's verdict on the attempt shown, as for a child made in training.
        assert instance.previous_score == domain.grade([instance], [instance.previous_response])[0].score


def test_fallible_teacher_rates(domain, demos):
    """Attempts are right about half of the time in every kind; an improve step keeps the shown answer about half of
    the time, and its answer is right about half of the time whether or not the shown one was (no oracle)."""

    def right(instance, response):
        return _value(response) == _reference_answer(domain.problem(instance.task_id).problem)

    for kind in KIND_WEIGHTS:
        rate = np.mean([right(i, r) for i, r in demos if i.mode == kind])
        assert 0.43 < rate < 0.57, (kind, rate)
    improve = [(i, r) for i, r in demos if i.mode == "improve"]
    kept = np.mean([r == i.previous_response for i, r in improve])
    # 1/2 kept, plus a re-drawn attempt equal to the shown one: both right (1/4) or the same slip (1/4 * 1/6).
    assert 0.58 < kept < 0.71
    after_right = np.mean([right(i, r) for i, r in improve if i.previous_score == 1.0])
    after_wrong = np.mean([right(i, r) for i, r in improve if i.previous_score == 0.0])
    assert 0.65 < after_right < 0.85 and 0.15 < after_wrong < 0.35  # 3/4 and 1/4


def test_deterministic_for_a_given_rng(domain, demos):
    again = domain.demonstrations(COUNT, np.random.default_rng(11))
    assert again == demos
    other = domain.demonstrations(50, np.random.default_rng(12))
    assert other != demos[:50]


def test_files_source_refuses_a_warm_start(tmp_path: pathlib.Path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n')
    domain = MathDomain({"source": "files", "train_files": [str(path)], "heldout_files": [f"test={path}"]})
    with pytest.raises(ValueError, match="procedural"):
        domain.demonstrations(4, np.random.default_rng(0))


def test_teacher_accuracy_is_configurable(domain):
    """``teacher_accuracy`` sets the rate of right attempts (checked by exact arithmetic): 1 is always right, 0.8 is
    right about 80 % of the time on base prompts; a value outside [0, 1] is refused by name."""

    def right_rate(accuracy, kind):
        d = MathDomain(dataclasses.replace(domain.config, teacher_accuracy=accuracy))
        pairs = [(i, r) for i, r in d.demonstrations(1000, np.random.default_rng(5)) if i.mode == kind]
        return np.mean([_value(r) == _reference_answer(d.problem(i.task_id).problem) for i, r in pairs])

    assert right_rate(1.0, "base") == 1.0 and right_rate(1.0, "improve") == 1.0
    assert 0.74 < right_rate(0.8, "base") < 0.86  # binomial sd at n ~ 500 is 0.018
    with pytest.raises(ValueError, match="teacher_accuracy"):
        MathDomain(dataclasses.replace(domain.config, teacher_accuracy=1.5))
