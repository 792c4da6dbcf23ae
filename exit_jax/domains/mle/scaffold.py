"""Greedy-search scaffold for evaluation (AIDE-style): improve the best solution, or debug a crash, for K steps.

The best node is chosen by the solution's *own* validation score (what it printed for its split of train); the
private test score of every step is recorded for reporting but never used to choose. Step 0 drafts from the base
prompt; each later step debugs the latest node if it crashed (at most ``max_debug`` times in a row), otherwise
improves the best valid node. ``best_test_normalized`` at step k is the test score of the node the search would
submit after k steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from exit_jax.domains.mle.domain import MLEDomain, validation_is_better
from exit_jax.types import Instance, PolicyFn


@dataclasses.dataclass
class SearchStep:
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
    task_id: str
    steps: list[SearchStep]

    @property
    def best_test_normalized(self) -> float:
        return self.steps[-1].best_test_normalized if self.steps else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "steps": [dataclasses.asdict(s) for s in self.steps]}


def greedy_search(domain: MLEDomain, task_id: str, policy_fn: PolicyFn, steps: int = 16,
                  max_debug: int = 3) -> SearchResult:
    """Run the scaffold on one competition for ``steps`` improvement steps after the initial draft.

    Args:
      domain: the MLE domain (its format decides python vs compact prompts).
      task_id: competition name.
      policy_fn: maps a batch of conversations to responses (called with a batch of one).
      steps: K, the number of steps after the draft.
      max_debug: consecutive debug attempts on a crashing line before returning to the best node.
    """
    metric = domain.competition(task_id).metric
    history: list[SearchStep] = []
    best: tuple[int, Instance, float, float] | None = None  # (step, child instance, validation, test)
    latest_child: Instance | None = None
    debug_run = 0
    for step in range(steps + 1):
        if step == 0:
            instance = domain.base_instance(task_id)
        elif latest_child is not None and latest_child.mode == "debug" and debug_run < max_debug:
            instance = latest_child
        elif best is not None:
            instance = best[1]
        else:
            instance = domain.base_instance(task_id)  # nothing valid and out of debug attempts: redraft
        response = policy_fn([domain.render(instance)])[0]
        grade = domain.grade([instance], [response])[0]
        child = domain.child(instance, response, grade)
        validation = grade.info.get("validation_score")
        debug_run = debug_run + 1 if instance.mode == "debug" else 0
        if grade.valid and validation is not None:
            if best is None or validation_is_better(metric, validation, best[2]):
                best = (step, child, validation, grade.score)
        latest_child = child
        history.append(SearchStep(
            step=step, mode=instance.mode, response=response, valid=grade.valid, validation_score=validation,
            test_normalized=grade.score, best_step=best[0] if best else None,
            best_validation=best[2] if best else None, best_test_normalized=best[3] if best else 0.0,
            error=grade.error))
    return SearchResult(task_id=task_id, steps=history)
