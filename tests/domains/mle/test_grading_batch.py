"""``Evaluator.evaluate_many``: a (competition, code) pair repeated within one batch runs once in the sandbox, and
every repeat gets its own copy of a result equal to what running it alone gives."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import pytest

from exit_jax.domains.mle.competition import load_competition
from exit_jax.domains.mle.grading import Evaluator

SOLUTION = """
import os
import pandas as pd
public = os.environ["PUBLIC_RESOURCE_PATH"]
train = pd.read_csv(os.path.join(public, "train.csv"))
test = pd.read_csv(os.path.join(public, "test.csv"))
test["target"] = 2 * test["x0"] - test["x1"] + {offset}
print("validation_score:", {offset})
test[["id", "target"]].to_csv("submission.csv", index=False)
"""


class CountingSandbox:
    """The real sandbox, with every run's (public dir, code) recorded."""

    def __init__(self, inner):
        self.inner = inner
        self._executor = inner._executor
        self.runs: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def run(self, code, public_dir, limits=None):
        with self._lock:
            self.runs.append((str(public_dir), code))
        return self.inner.run(code, public_dir, limits)


@pytest.fixture(scope="module")
def twin_competition(toy_competition, tmp_path_factory):
    """The toy competition's files under another name: same data, a different cache key."""
    root = tmp_path_factory.mktemp("twin") / "toy-twin-rmse"
    shutil.copytree(toy_competition.root, root)
    meta = json.loads((root / "competition.json").read_text())
    (root / "competition.json").write_text(json.dumps({**meta, "name": "toy-twin-rmse"}))
    twin = load_competition(root)
    assert twin.name != toy_competition.name
    return twin


def test_repeats_in_one_batch_run_once_and_get_equal_copies(sandbox, toy_competition, twin_competition):
    a, b = SOLUTION.format(offset=0.0), SOLUTION.format(offset=0.5)
    counting = CountingSandbox(sandbox)
    batch = [(toy_competition, a), (toy_competition, b), (toy_competition, a), (twin_competition, a),
             (toy_competition, a)]
    results = Evaluator(counting).evaluate_many([c for c, _ in batch], [code for _, code in batch])

    ran = sorted((public, code) for public, code in counting.runs)
    assert ran == sorted([(str(toy_competition.public_dir), a), (str(toy_competition.public_dir), b),
                          (str(twin_competition.public_dir), a)])

    # Independent reference: each distinct pair graded alone by a fresh evaluator.
    alone = {key: Evaluator(sandbox).evaluate(*pair) for key, pair in
             {"toy-a": (toy_competition, a), "toy-b": (toy_competition, b), "twin-a": (twin_competition, a)}.items()}
    expected = ["toy-a", "toy-b", "toy-a", "twin-a", "toy-a"]
    for result, key in zip(results, expected, strict=True):
        assert result.valid and alone[key].valid
        assert (result.score, result.normalized_score, result.validation_score) == (
            alone[key].score, alone[key].normalized_score, alone[key].validation_score)
    # The two codes really differ (the offset moves every prediction and the printed validation score).
    assert results[0].score != results[1].score and (results[0].validation_score, results[1].validation_score) == (
        0.0, 0.5)
    # Copies, not one shared object: a caller editing one result leaves its repeats alone.
    assert len({id(r) for r in results}) == len(results)
    results[2].feedback = "edited"
    assert results[0].feedback != "edited" and results[4].feedback != "edited"
    assert dataclasses.asdict(results[0]) == dataclasses.asdict(results[4])
