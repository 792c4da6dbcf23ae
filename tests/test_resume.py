"""Resume: a run killed with SIGKILL, or stopped with SIGTERM, and rerun with the same command ends exactly where an
uninterrupted run with the same seed ends.

"Exactly" means: ``metrics.jsonl`` equal record for record, bitwise for every value except wall-clock ones (keys
starting with ``time/``), the final eval JSON equal, and the exported policy's tensors bitwise equal. The reference is
the shared uninterrupted math run (``run_helpers.MATH_SMOKE``), whose parameters change every iteration (weight
decay under an LR warm-up), so equal weights mean the optimizer state and step count were restored too.
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest

from tests import run_helpers as rh

NUM_ITERATIONS = rh.MATH_ITERATIONS


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return rh.shared_run(tmp_path_factory, "math", rh.MATH_SMOKE)[0]


def assert_same_run(workdir: Path, reference: Path) -> None:
    """The resumed run's outputs equal the uninterrupted run's (see module docstring)."""
    resumed = rh.read_jsonl(workdir / "metrics.jsonl")
    expected = rh.read_jsonl(reference / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [r["step"] for r in expected]
    for got, want in zip(rh.without_wall_clock(resumed), rh.without_wall_clock(expected), strict=True):
        differing = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
        assert not differing, f"step {got['step']}: resumed != uninterrupted for {differing}"
    name = f"step_{NUM_ITERATIONS:06d}.json"
    assert json.loads((workdir / "eval" / name).read_text()) == json.loads((reference / "eval" / name).read_text())
    got_weights = rh.safetensors_arrays(workdir / "policy")
    want_weights = rh.safetensors_arrays(reference / "policy")
    assert sorted(got_weights) == sorted(want_weights)
    for key, want in want_weights.items():
        got = got_weights[key]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), f"policy tensor {key} differs"


def test_reference_weights_follow_the_decay_schedule(reference, tmp_path):
    """Guards the premise above, against a hand computation: with zero policy gradients, AdamW leaves
    ``W_N = W_0 * prod_t (1 - lr_t * wd)`` for the matrices (norm scales untouched), where the warm-up gives
    lr_t = 3e-4 * t / 4 at optimizer counts t = 0 .. N-1 (math preset LR, warmup_steps=4, weight_decay=0.5)."""
    from exit_jax.models.embedded import embedded_policy
    from exit_jax.models.hf_io import export_hf_model

    export_hf_model(embedded_policy(0)[0], tmp_path / "initial")
    initial = rh.safetensors_arrays(tmp_path / "initial")
    final = rh.safetensors_arrays(reference / "policy")
    records = rh.read_jsonl(reference / "metrics.jsonl")
    assert all(r["grad_norm"] == 0.0 for r in records)  # the smoke policy earns no reward (see run_helpers)
    factor = np.prod([1.0 - 3e-4 * t / 4 * 0.5 for t in range(NUM_ITERATIONS)])
    assert factor < 1.0
    for key, start in initial.items():
        if start.ndim >= 2:
            assert not np.array_equal(final[key], start), key
            np.testing.assert_allclose(final[key], start * factor, rtol=1e-6, atol=0, err_msg=key)
        else:
            assert np.array_equal(final[key], start), key


def test_kill9_then_rerun_matches_uninterrupted(reference, tmp_path, tmp_path_factory):
    cache = rh.cache_dir_for(tmp_path_factory)
    # Seeded choice of the iteration to kill after; from 2 on, so at least one training iteration's checkpoint
    # (parameters, optimizer state, buffer, RNGs) is what the rerun restores.
    kill_after = random.Random(6).choice(range(2, NUM_ITERATIONS))
    workdir = tmp_path / "run"
    process = rh.start(rh.MATH_SMOKE, workdir, cache)
    try:
        rh.wait_for_line(process, f"iter {kill_after}/{NUM_ITERATIONS}")
        logged = [r["step"] for r in rh.read_jsonl(workdir / "metrics.jsonl")]
        assert kill_after in logged
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=rh.RUN_TIMEOUT_S)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    restart_from = max(rh.checkpoint_steps(workdir))
    assert 1 <= restart_from < NUM_ITERATIONS

    result = rh.launch(rh.MATH_SMOKE, workdir, cache)
    assert result.returncode == 0, result.stderr[-6000:]
    progress = [line for line in result.stderr.splitlines() if line.startswith("iter ")]
    assert progress[0].startswith(f"iter {restart_from + 1}/{NUM_ITERATIONS}"), progress  # resumed, not restarted
    assert_same_run(workdir, reference)


def test_sigterm_saves_exits_cleanly_and_rerun_finishes(reference, tmp_path, tmp_path_factory):
    cache = rh.cache_dir_for(tmp_path_factory)
    workdir = tmp_path / "run"
    process = rh.start(rh.MATH_SMOKE, workdir, cache)
    try:
        rh.wait_for_line(process, f"iter 1/{NUM_ITERATIONS}")
        process.send_signal(signal.SIGTERM)  # what a TPU VM preemption delivers
        stderr = process.stderr.read()
    finally:
        process.wait(timeout=rh.RUN_TIMEOUT_S)
        process.stderr.close()
    assert process.returncode == 0, stderr[-6000:]
    stopped = [line for line in stderr.splitlines() if "stopped by SIGTERM at iteration" in line]
    assert stopped, stderr[-6000:]
    stop_iteration = int(stopped[0].split("iteration")[1].split(";")[0])
    assert max(rh.checkpoint_steps(workdir)) == stop_iteration  # the checkpoint was written before exiting
    assert rh.read_jsonl(workdir / "metrics.jsonl")[-1]["step"] == stop_iteration
    assert not (workdir / "report.md").exists()  # a stopped run does not pretend to be finished

    result = rh.launch(rh.MATH_SMOKE, workdir, cache)
    assert result.returncode == 0, result.stderr[-6000:]
    assert f"done: {NUM_ITERATIONS} iterations" in result.stdout
    assert_same_run(workdir, reference)
