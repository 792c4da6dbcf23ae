"""Greedy-search scaffold for evaluation (AIDE-style): improve the best solution, or debug a crash, for K steps.

The best node is chosen by the solution's *own* validation score (what it printed for its split of train); the
private test score of every step is recorded for reporting but never used to choose. Step 0 drafts from the base
prompt; each later step debugs the latest node if it crashed (at most ``max_debug`` times in a row), otherwise
improves the best valid node. ``best_test_normalized`` at step k is the test score of the node the search would
submit after k steps.

``greedy_search_many`` advances many independent chains (every task x ``num_samples``) in lockstep: one batched
``policy_fn`` call and one ``domain.grade`` call (graded in parallel on the sandbox pool) per step. Each chain's
choices depend only on its own history, so the result per chain is the same as running it alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from exit_jax.domains.mle.domain import MLEDomain, validation_is_better
from exit_jax.types import Grade, Instance, PolicyFn


@dataclasses.dataclass
class SearchStep:
    """One step of a chain: what was asked (mode), what the policy wrote, and how it scored."""

    step: int
    mode: str
    response: str
    valid: bool
    validation_score: float | None
    test_normalized: float
    best_step: int | None
    best_validation: float | None
    best_test_normalized: float
    error: str | None


@dataclasses.dataclass
class SearchResult:
    """One chain's steps 0..K; ``sample`` is the chain's index among the chains of its task."""

    task_id: str
    steps: list[SearchStep]
    sample: int = 0

    @property
    def best_test_normalized(self) -> float:
        return self.steps[-1].best_test_normalized if self.steps else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "sample": self.sample, "steps": [dataclasses.asdict(s) for s in self.steps]}


class SearchScores(list):
    """``[tasks][samples][steps + 1]`` best-so-far test scores as a plain nested list (what ``evaluate`` averages),
    carrying the searches behind them: ``traces[task_id][sample]`` is that chain's list of step dicts (mode,
    response, valid, validation_score, test_normalized, best_step, ...)."""

    def __init__(self, results: Sequence[SearchResult], task_ids: Sequence[str], num_samples: int):
        if len(results) != len(task_ids) * num_samples:
            raise ValueError(f"{len(results)} search results for {len(task_ids)} tasks x {num_samples} samples")
        rows = [results[i * num_samples:(i + 1) * num_samples] for i in range(len(task_ids))]
        super().__init__([[[s.best_test_normalized for s in chain.steps] for chain in row] for row in rows])
        self.traces: dict[str, list[list[dict[str, Any]]]] = {
            task_id: [[dataclasses.asdict(s) for s in chain.steps] for chain in row]
            for task_id, row in zip(task_ids, rows, strict=True)}


@dataclasses.dataclass
class _BestNode:
    step: int
    child: Instance
    validation: float
    test_normalized: float


class _Chain:
    """The search state of one chain: its history, best node by own validation score, and debug run."""

    def __init__(self, task_id: str, sample: int, metric: str, max_debug: int):
        self.task_id, self.sample, self.metric, self.max_debug = task_id, sample, metric, max_debug
        self.history: list[SearchStep] = []
        self.best: _BestNode | None = None
        self.latest_child: Instance | None = None
        self.debug_run = 0

    def next_instance(self, domain: MLEDomain) -> Instance:
        """The instance to prompt with at the next step (base, debug of the latest crash, or improve of the best)."""
        if not self.history:
            return domain.base_instance(self.task_id)
        if self.latest_child is not None and self.latest_child.mode == "debug" and self.debug_run < self.max_debug:
            return self.latest_child
        if self.best is not None:
            return self.best.child
        return domain.base_instance(self.task_id)  # nothing valid and out of debug attempts: redraft

    def record(self, instance: Instance, response: str, grade: Grade, child: Instance) -> None:
        """Account for one graded step; only the solution's own validation score can change the best node."""
        step = len(self.history)
        validation = grade.info.get("validation_score")
        self.debug_run = self.debug_run + 1 if instance.mode == "debug" else 0
        if grade.valid and validation is not None:
            if self.best is None or validation_is_better(self.metric, validation, self.best.validation):
                self.best = _BestNode(step, child, validation, grade.score)
        self.latest_child = child
        best = self.best
        self.history.append(SearchStep(
            step=step, mode=instance.mode, response=response, valid=grade.valid, validation_score=validation,
            test_normalized=grade.score, best_step=best.step if best else None,
            best_validation=best.validation if best else None,
            best_test_normalized=best.test_normalized if best else 0.0, error=grade.error))


def greedy_search_many(domain: MLEDomain, task_ids: Sequence[str], policy_fn: PolicyFn, steps: int = 16,
                       num_samples: int = 1, max_debug: int = 3) -> list[SearchResult]:
    """Run ``num_samples`` independent greedy searches per task, all chains advancing together.

    Args:
      domain: the MLE domain (its format decides python vs compact prompts).
      task_ids: competition names.
      policy_fn: maps a batch of conversations to one response each; called once per step with every chain.
      steps: K, the number of steps after the draft.
      num_samples: independent chains per task.
      max_debug: consecutive debug attempts on a crashing line before returning to the best node.

    Returns:
      One ``SearchResult`` per chain, task-major: ``[task 0 sample 0, task 0 sample 1, ..., task 1 sample 0, ...]``.

    Raises:
      ValueError: ``steps`` or ``num_samples`` out of range, or ``policy_fn`` returned the wrong number of responses.
    """
    if steps < 0 or num_samples < 1:
        raise ValueError(f"greedy_search_many needs steps >= 0 and num_samples >= 1, got {steps}, {num_samples}")
    chains = [_Chain(task_id, sample, domain.competition(task_id).metric, max_debug)
              for task_id in task_ids for sample in range(num_samples)]
    for _ in range(steps + 1 if chains else 0):
        instances = [chain.next_instance(domain) for chain in chains]
        responses = list(policy_fn([domain.render(instance) for instance in instances]))
        if len(responses) != len(instances):
            raise ValueError(f"policy_fn returned {len(responses)} responses for {len(instances)} conversations")
        grades = domain.grade(instances, responses)
        for chain, instance, response, grade in zip(chains, instances, responses, grades, strict=True):
            chain.record(instance, response, grade, domain.child(instance, response, grade))
    return [SearchResult(task_id=chain.task_id, steps=chain.history, sample=chain.sample) for chain in chains]


def greedy_search(domain: MLEDomain, task_id: str, policy_fn: PolicyFn, steps: int = 16,
                  max_debug: int = 3) -> SearchResult:
    """Run the scaffold on one competition for ``steps`` improvement steps after the initial draft (one chain).

    Args:
      domain: the MLE domain (its format decides python vs compact prompts).
      task_id: competition name.
      policy_fn: maps a batch of conversations to responses (called with a batch of one).
      steps: K, the number of steps after the draft.
      max_debug: consecutive debug attempts on a crashing line before returning to the best node.
    """
    return greedy_search_many(domain, [task_id], policy_fn, steps, num_samples=1, max_debug=max_debug)[0]
