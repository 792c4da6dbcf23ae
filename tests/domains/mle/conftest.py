"""Shared fixtures for the MLE domain tests: one small sandbox pool and a tiny toy competition."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from exit_jax.domains.mle.competition import write_competition
from exit_jax.domains.mle.sandbox import Sandbox, SandboxLimits

SECRET = 987654.321  # appears only in the private answers of the toy competition
TEST_LIMITS = SandboxLimits(timeout_s=30.0, memory_mb=3000, file_mb=16, disk_mb=48, nproc=32,
                            output_bytes=1 << 20)


@pytest.fixture(scope="session")
def sandbox():
    # A secret in the caller's environment: solutions must not be able to find it (see test_answers_unreachable).
    os.environ["EXIT_JAX_TEST_CALLER_SECRET"] = str(SECRET)
    try:
        with Sandbox(workers=2, limits=TEST_LIMITS) as pool:
            yield pool
    finally:
        os.environ.pop("EXIT_JAX_TEST_CALLER_SECRET", None)


@pytest.fixture(scope="session")
def toy_competition(tmp_path_factory):
    """A 60-row regression toy: y = 2 x0 - x1 (+ a secret offset on the test answers only)."""
    rng = np.random.RandomState(0)
    x = rng.randn(60, 2)
    y = 2 * x[:, 0] - x[:, 1]
    train = pd.DataFrame({"id": np.arange(40), "x0": x[:40, 0], "x1": x[:40, 1], "target": y[:40]})
    test = pd.DataFrame({"id": np.arange(40, 60), "x0": x[40:, 0], "x1": x[40:, 1]})
    answers = pd.DataFrame({"id": test["id"], "target": y[40:]})
    answers.loc[0, "target"] = SECRET
    sample = pd.DataFrame({"id": test["id"], "target": 0.0})
    meta = {"metric": "rmse", "worst": float(np.sqrt(np.mean((answers["target"] - y[:40].mean()) ** 2))),
            "best": 0.0, "id_column": "id", "target_columns": ["target"], "task": "regression"}
    root = tmp_path_factory.mktemp("competitions")
    return write_competition(root, "toy-rmse", "# toy\nPredict target.", train, test, answers, sample, meta)
