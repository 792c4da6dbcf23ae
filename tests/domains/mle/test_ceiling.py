"""Ceilings: a built-in competition's best known score is its reference specs graded for real, cached on disk."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from exit_jax.domains.mle import builtin
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain, solution_code
from exit_jax.domains.mle.grading import Evaluator, SolutionResult

DOCS = Path(__file__).resolve().parents[3] / "docs" / "mle.md"


def by_hand(competition, raw_score: float) -> float:
    """Normalise a raw metric with NumPy: worst -> 0, best -> 1, clipped."""
    return float(np.clip((raw_score - competition.worst) / (competition.best - competition.worst), 0.0, 1.0))


class RefusingEvaluator:
    """Fails the test if anything is run: the ceiling must come from the cache."""

    def evaluate_many(self, competitions, codes):
        raise AssertionError("reference specs re-ran although they were cached")


class FailingEvaluator:
    def evaluate_many(self, competitions, codes):
        return [SolutionResult(valid=False, score=None, normalized_score=0.0, validation_score=None, feedback="",
                               error="timeout", runtime_s=0.0) for _ in codes]


def test_reference_specs_match_the_documented_sweep():
    table = {m.group(1): m.group(2) for m in re.finditer(r"^\| ([a-z0-9]+-[a-z]+) \| `([^`]+)` \(", DOCS.read_text(),
                                                          flags=re.M)}
    assert table == builtin.SWEEP_BEST
    assert set(builtin.SWEEP_BEST) == set(builtin.builtin_names())
    for name in builtin.builtin_names():
        specs = builtin.reference_specs(name)
        assert specs[0] == builtin.SWEEP_BEST[name] and len(specs) == len(set(specs)) >= 4
    with pytest.raises(KeyError, match="no reference specs"):
        builtin.reference_specs("not-a-competition")


def test_ceiling_is_the_best_reference_graded_independently(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("EXIT_JAX_CACHE", str(tmp_path))
    domain = MLEDomain(MLEConfig(solution_format="compact"), sandbox=sandbox)
    name = "circles-auc"
    ceiling = domain.ceiling(name)
    competition = builtin.get_competition(name, root=tmp_path / "mle" / f"v{builtin.CACHE_VERSION}")
    assert (competition.root / builtin.REFERENCE_FILE).exists()
    # Independent path: a fresh evaluator (no shared cache) grades every reference spec and the weak `model=lin`.
    specs = [*builtin.reference_specs(name), "model=lin"]
    results = Evaluator(sandbox).evaluate_many([competition] * len(specs),
                                               [solution_code(s, competition, "compact") for s in specs])
    assert all(r.valid for r in results), [(s, r.error) for s, r in zip(specs, results, strict=True)]
    normalised = [by_hand(competition, r.score) for r in results]
    assert ceiling == pytest.approx(max(normalised[:-1]), rel=1e-12)
    assert ceiling >= normalised[-1]
    # Cached: the second call (and any later process) reads the file and runs nothing.
    assert builtin.reference_ceiling(competition, RefusingEvaluator()) == ceiling


def test_ceiling_falls_back_without_a_valid_reference(tmp_path):
    competition = builtin.get_competition("credit-logloss", root=tmp_path)
    with pytest.warns(UserWarning, match="no reference spec ran validly"):
        assert builtin.reference_ceiling(competition, FailingEvaluator()) == 1.0
    assert not (competition.root / builtin.REFERENCE_FILE).exists()  # failures are retried, never cached
