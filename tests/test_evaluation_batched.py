"""evaluate() with a domain scaffold: scores keep their [tasks][samples][K + 1] meaning, traces are passed through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exit_jax.evaluation import evaluate


class ScoresWithTraces(list):
    """A nested score list carrying traces, as MLEDomain.evaluation_chain returns."""

    traces: dict


class _ScaffoldDomain:
    name = "fake"
    multi_turn = False

    def __init__(self, scores, traces=None, ceilings=None):
        self.scores, self.traces, self.ceilings = scores, traces, ceilings or {}
        self.calls = []

    def evaluation_chain(self, task_ids, policy_fn, steps, num_samples):
        self.calls.append((list(task_ids), steps, num_samples))
        if self.traces is None:
            return self.scores
        out = ScoresWithTraces(self.scores)
        out.traces = self.traces
        return out

    def ceiling(self, task_id):
        return self.ceilings.get(task_id, 1.0)


SCORES = [[[0.1, 0.2, 0.4], [0.0, 0.3, 0.3]], [[0.5, 0.5, 0.9], [0.2, 0.6, 0.7]]]  # [tasks=2][samples=2][K+1=3]


def test_scores_summarised_and_traces_copied():
    traces = {"a": [[{"step": 0, "mode": "base", "response": "model=lin"}]], "b": []}
    domain = _ScaffoldDomain(SCORES, traces, ceilings={"a": 0.9, "b": 0.95})
    result = evaluate(domain, lambda c: [], ["a", "b"], K=2, num_samples=2)
    assert domain.calls == [(["a", "b"], 2, 2)]
    chains = np.array(SCORES).reshape(4, 3)
    assert result["mean"] == pytest.approx(chains.mean(axis=0).tolist())
    assert result["std"] == pytest.approx(chains.std(axis=0).tolist())
    assert result["per_task"] == {"a": pytest.approx([0.05, 0.25, 0.35]), "b": pytest.approx([0.35, 0.55, 0.8])}
    assert result["delta_K"] == pytest.approx(np.mean([0.4, 0.3, 0.9, 0.7]) - np.mean([0.1, 0.0, 0.5, 0.2]))
    assert result["ceiling"] == {"a": 0.9, "b": 0.95}
    assert result["traces"] == traces
    json.dumps(result)  # the eval file is JSON


def test_plain_scores_have_no_traces_key():
    result = evaluate(_ScaffoldDomain(SCORES), lambda c: [], ["a", "b"], K=2, num_samples=2)
    assert "traces" not in result
    assert result["k"] == [0, 1, 2] and result["avg_at_n"] == 2


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"evaluation_chain returned scores of shape \(2, 2, 3\)"):
        evaluate(_ScaffoldDomain(SCORES), lambda c: [], ["a", "b"], K=3, num_samples=2)
