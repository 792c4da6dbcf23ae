"""The math Domain: procedural source, prompts, grading through rollouts, children."""

import ast
import json
import operator
from fractions import Fraction

import pytest

from exit_jax.domains.math import MathDomain
from exit_jax.domains.math.procedural import FAMILIES, generate_problem, procedural_splits
from exit_jax.domains.math.prompts import DIVERGE_TEMPLATE, IMPROVE_TEMPLATE
from exit_jax.types import Domain

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _evaluate(node):
    """Exact arithmetic on Python's own parse of the expression (an independent reference for the
    answers)."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise AssertionError(f"unexpected node {node}")


def _reference_answer(text):
    if text.startswith("Solve "):
        left, right = text[len("Solve ") :].split("=")
        coefficient, offset = left.split("x+")
        value = (Fraction(int(right)) - int(offset)) / int(coefficient)
        assert value.denominator == 1
        return value
    if " mod " in text:
        number, modulus = text.split(" mod ")
        return Fraction(int(number) % int(modulus))
    return _evaluate(ast.parse(text, mode="eval").body)


def test_generated_answers_are_exact():
    for index in range(400):
        family, text, answer = generate_problem(seed=7, index=index)
        assert family in FAMILIES
        assert Fraction(answer) == _reference_answer(text), text


def test_splits_are_deterministic_disjoint_and_short():
    train, heldout = procedural_splits(seed=1, train_size=300, heldout_size=60)
    again_train, again_heldout = procedural_splits(seed=1, train_size=300, heldout_size=60)
    assert [p.problem for p in train] == [p.problem for p in again_train]
    assert [p.problem for p in heldout] == [p.problem for p in again_heldout]
    assert not {p.problem for p in train} & {p.problem for p in heldout}
    assert len({p.problem for p in train}) == 300
    assert max(len(p.problem) for p in train + heldout) <= 24
    with pytest.raises(ValueError, match="max_operand"):
        procedural_splits(seed=1, train_size=100, heldout_size=10, families=("mod",), max_operand=3)


@pytest.fixture(scope="module")
def domain():
    return MathDomain({"train_size": 64, "procedural_heldout_size": 16, "seed": 2})


def test_protocol_splits_and_config_errors(domain):
    assert isinstance(domain, Domain) and not domain.multi_turn
    assert len(domain.task_ids("train")) == 64 and len(domain.task_ids("heldout")) == 16
    assert sum(len(domain.task_ids(f"heldout/{f}")) for f in FAMILIES) == 16
    with pytest.raises(KeyError, match="unknown split"):
        domain.task_ids("validation")
    with pytest.raises(ValueError, match="prompt_style"):
        MathDomain({"prompt_style": "verbose"})
    with pytest.raises(ValueError, match="unknown field"):
        MathDomain({"train_sz": 3})
    with pytest.raises(ValueError, match="train_files"):
        MathDomain({"source": "files"})


def test_rollout_rewards_children_and_prompts(domain):
    ids = domain.task_ids("train")[:6]
    answers = {i: domain.problem(i).answer for i in ids}

    def policy(conversations):
        # Correct for even positions, a wrong box for odd ones, an unboxed answer for the last.
        responses = []
        for position in range(len(conversations)):
            task_id = ids[position]
            if position == len(conversations) - 1:
                responses.append(answers[task_id])
            elif position % 2 == 0:
                responses.append(f"Thus \\boxed{{{answers[task_id]}}}")
            else:
                responses.append(f"\\boxed{{{answers[task_id]}+1}}")
        return responses

    episodes = domain.rollout([domain.base_instance(i) for i in ids], policy)
    assert [e.grade.reward for e in episodes] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert episodes[-1].grade.valid is False and episodes[0].grade.valid is True
    child = episodes[1].children[-1]
    assert (child.iterate, child.mode, child.previous_response) == (
        1,
        "improve",
        episodes[1].messages[-1].content,
    )
    improve_text = domain.render(child)[0].content
    request = domain.render(domain.base_instance(ids[1]))[0].content
    assert improve_text == IMPROVE_TEMPLATE.format(instruction=request, previous_response=child.previous_response)
    diverge_text = domain.render(child.with_mode("diverge"))[0].content
    assert diverge_text.startswith(DIVERGE_TEMPLATE.split("{instruction}")[0])
    # Same absolute reward for a self-iteration step: keeping a correct answer is rewarded.
    grade = domain.grade([child], [f"\\boxed{{{answers[ids[1]]}}}"])[0]
    assert grade.reward == 1.0
    json.dumps(child.to_json())


def test_compact_prompts_are_short():
    domain = MathDomain({"train_size": 8, "procedural_heldout_size": 4, "prompt_style": "compact"})
    instance = domain.base_instance(domain.task_ids("train")[0])
    assert len(domain.render(instance)[0].content) < 40
    child = domain.child(instance, "\\boxed{3}", domain.grade([instance], ["\\boxed{3}"])[0])
    assert "\\boxed{3}" in domain.render(child)[0].content
    # The compact setting also accepts a bare answer (a tiny policy need not learn \boxed first).
    answer = domain.problem(instance.task_id).answer
    bare, boxed, wrong = domain.grade([instance] * 3, [f" {answer}", f"\\boxed{{{answer}}}", " 100000"])
    assert (bare.reward, boxed.reward, wrong.reward) == (1.0, 1.0, 0.0)
    assert bare.valid and wrong.valid
    chat = MathDomain({"train_size": 8, "procedural_heldout_size": 4})
    assert chat.grade([instance], [f" {answer}"])[0].reward == 0.0


def test_every_family_answer_is_accepted_by_math_verify_boxed_and_bare():
    domain = MathDomain({"train_size": 140, "procedural_heldout_size": 10, "prompt_style": "compact", "seed": 5})
    problems = [domain.problem(task_id) for task_id in domain.task_ids("train")]
    assert {p.source for p in problems} == {f"procedural/{family}" for family in FAMILIES}
    instances = [domain.base_instance(p.task_id) for p in problems]
    boxed = domain.grade(instances, [f"\\boxed{{{p.answer}}}" for p in problems])
    bare = domain.grade(instances, [p.answer for p in problems])
    assert [g.reward for g in boxed] == [1.0] * len(problems)
    assert [g.reward for g in bare] == [1.0] * len(problems)
