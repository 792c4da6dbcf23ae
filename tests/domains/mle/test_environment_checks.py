"""A run never trains on a broken or weakened sandbox without saying so.

- Start-up: a sandbox that cannot import the solutions' packages stops the run (through the real command line) with
  the import error in its message, before any training.
- Weak isolation (the fallback) is refused unless ``domain.allow_weak_sandbox``; with it, the run records what is
  missing.
- During training: a batch whose solutions all fail the same way is reported; ``max_failed_batches`` such batches
  in a row stop the run with the common error.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import sklearn

from exit_jax.domains.mle.domain import MLEConfig, MLEDomain
from exit_jax.domains.mle.sandbox import Sandbox, SandboxError
from exit_jax.types import Instance
from tests import run_helpers as rh
from tests.domains.mle.conftest import TEST_LIMITS


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the private /tmp that hides the packages)")
def test_startup_check_stops_a_run_whose_sandbox_cannot_import_the_packages(tmp_path, tmp_path_factory):
    """scikit-learn reachable only through PYTHONPATH under /tmp: the trainer and the fork server import it, but the
    sandbox exposes the interpreter's own directories, not PYTHONPATH, so solutions cannot."""
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "sklearn").symlink_to(Path(sklearn.__file__).parent)
    workdir = tmp_path / "run"
    result = rh.launch(("--config=experiments/mle.py:smoke",), workdir, rh.cache_dir_for(tmp_path_factory),
                       timeout=300, PYTHONPATH=str(deps))
    assert result.returncode != 0, result.stderr[-3000:]
    assert "known-good solution" in result.stderr, result.stderr[-3000:]
    assert "ModuleNotFoundError: No module named 'sklearn." in result.stderr, result.stderr[-3000:]
    assert "error: the MLE sandbox cannot run a known-good solution" in result.stderr
    assert "tpu_run.py" not in result.stderr  # a message (with the solution's own trace), not the trainer's crash
    assert not (workdir / "metrics.jsonl").exists() and not (workdir / "checkpoints").exists()


@pytest.fixture(scope="module")
def weak_sandbox():
    with Sandbox(workers=1, limits=TEST_LIMITS, isolate=False) as pool:
        yield pool


def test_weak_isolation_is_refused_unless_allowed(weak_sandbox):
    with pytest.raises(SandboxError, match=r"allow_weak_sandbox=True") as refused:
        MLEDomain(MLEConfig(), sandbox=weak_sandbox).check_environment()
    for missing in ("uid_drop", "network_namespace", "pid_namespace", "private_tmp", "memory_cgroup"):
        assert missing in str(refused.value)
    recorded = MLEDomain(MLEConfig(allow_weak_sandbox=True), sandbox=weak_sandbox).check_environment()
    assert recorded["sandbox"]["full_isolation"] is False
    assert "uid_drop" in recorded["sandbox"]["missing"] and recorded["sandbox"]["mode"].startswith("fallback")


def test_full_isolation_passes_and_is_recorded(sandbox):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    recorded = MLEDomain(MLEConfig(), sandbox=sandbox).check_environment()["sandbox"]
    assert recorded["full_isolation"] and recorded["missing"] == [] and recorded["mode"] == "isolated"


def _python(code: str) -> str:
    return f"```python\n{code}\n```"


def test_batches_that_all_fail_the_same_way_stop_the_run(sandbox, capfd):
    domain = MLEDomain(MLEConfig(max_failed_batches=3), sandbox=sandbox)
    instances = [Instance(task_id="hastie-auc")] * 3
    broken = [_python(f"import numpy\nimport no_such_module_{i % 1}\n") for i in range(3)]
    mixed = [_python("import no_such_module_0\n"), _python("raise ValueError('bad')\n"), _python("1/0\n")]
    for _ in range(2):
        grades = domain.grade(instances, broken)
        assert all(not g.valid and g.error == "crash" for g in grades)
    assert "all 3 solutions of this batch failed with \"ModuleNotFoundError: No module named 'no_such_module_0'\"" \
        in capfd.readouterr().err
    domain.grade(instances, mixed)  # different failures: the count starts again
    domain.grade(instances, broken)
    domain.grade(instances, broken)
    with pytest.raises(SandboxError, match=r"3 consecutive batches failed with .*ModuleNotFoundError: No module "
                                           r"named 'no_such_module_0'"):
        domain.grade(instances, broken)
    never = MLEDomain(MLEConfig(max_failed_batches=0), sandbox=sandbox)
    for _ in range(4):
        never.grade(instances, broken)  # 0: reported, never stopped


def test_max_failed_batches_must_not_be_negative():
    with pytest.raises(ValueError, match="max_failed_batches"):
        dataclasses.replace(MLEConfig(), max_failed_batches=-1)
