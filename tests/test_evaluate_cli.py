"""``python -m exit_jax.evaluate``: any policy evaluated without training.

An exported policy evaluated with its run's config repeats the run's own final held-out evaluation exactly (every
number of the evaluation JSON), and writes only the evaluation and its report; a run directory evaluates its
checkpoint; bad input gets a one-line error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import run_helpers as rh


def _evaluate(args, tmp_path_factory, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exit_jax.evaluate", *args], cwd=rh.REPO,
                          env=rh.run_env(rh.cache_dir_for(tmp_path_factory)), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _final_eval(run: Path) -> dict:
    return json.loads(sorted((run / "eval").glob("step_*.json"))[-1].read_text())


@pytest.fixture(scope="module")
def math_run(tmp_path_factory):
    return rh.shared_run(tmp_path_factory, "math", rh.MATH_SMOKE)[0]


def test_exported_policy_repeats_the_runs_own_evaluation(math_run, tmp_path, tmp_path_factory):
    out = tmp_path / "out"
    result = _evaluate((*rh.MATH_SMOKE, f"--policy={math_run / 'policy'}", f"--out={out}"), tmp_path_factory)
    assert result.returncode == 0, result.stderr[-3000:]
    got, want = json.loads((out / "eval.json").read_text()), _final_eval(math_run)
    assert got.pop("policy") == str(math_run / "policy")
    assert got == want  # bit for bit: every score, per task and per k
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "plots", "report.md"]  # no checkpoint, no state
    assert (out / "plots" / "score_vs_k.png").is_file()
    meta = json.loads((math_run / "policy" / "exit_jax_policy.json").read_text())
    assert meta["iteration"] == want["step"] and (math_run / "policy" / "generation_config.json").is_file()


def test_a_run_directory_evaluates_its_checkpoint(math_run, tmp_path, tmp_path_factory):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(math_run, run)
    out = tmp_path / "out"
    result = _evaluate((f"--policy={run}", f"--out={out}", "--split=train"), tmp_path_factory)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads((out / "eval.json").read_text())
    assert got["split"] == "train" and got["step"] == _final_eval(math_run)["step"]


def test_bad_policy_directory_is_one_line(tmp_path, tmp_path_factory):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _evaluate((*rh.MATH_SMOKE, f"--policy={empty}", f"--out={tmp_path / 'out'}"), tmp_path_factory)
    assert result.returncode != 0
    assert "no config.json" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
