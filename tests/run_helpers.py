"""Shared plumbing of the run-level tests: launch ``launch/tpu_run.py`` as a subprocess, share finished runs.

Every run goes through the real command line (``sys.executable launch/tpu_run.py --config=...``) in a fresh process.
The processes share one persistent JAX compilation cache (under pytest's base temp directory), so only the first run
of each shape pays for XLA compilation; cached executables are the same programs, so results stay bitwise equal.

``shared_run`` keeps finished runs of one pytest session: the math reference run serves the output checks, the
resume tests' uninterrupted reference and the launch-error tests' "existing workdir" at the cost of one run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch" / "tpu_run.py"
RUN_TIMEOUT_S = 600  # a hung run fails the test instead of blocking CI
DEVICES_PER_PROCESS = 2

# Math smoke, shrunk further: 4 iterations (checkpoint every iteration), K = 2 on 2 held-out problems. The smoke
# policy never earns reward, so every GRPO gradient is 0; AdamW weight decay with an LR warm-up makes the parameters
# (and so the checkpointed optimizer step count) change every iteration anyway, so "equal weights" is not vacuous.
MATH_ITERATIONS = 4
MATH_SMOKE = ("--config=experiments/math.py:smoke", f"--config.train.num_iterations={MATH_ITERATIONS}",
              "--config.eval.K=2",
              "--config.eval.max_tasks=2", "--config.rl.weight_decay=0.5", "--config.rl.warmup_steps=4")

_SHARED: dict[tuple[str, ...], tuple[Path, subprocess.CompletedProcess]] = {}


def run_env(cache_dir: Path, devices: int = DEVICES_PER_PROCESS, **extra: str) -> dict[str, str]:
    """The subprocess environment: CPU, ``devices`` fake devices, the shared compilation cache, no distributed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXIT_JAX_")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    env.pop("PYTHONHASHSEED", None)  # each process hashes strings differently, as separate real runs do
    env.update(extra)
    return env


def cache_dir_for(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    path.mkdir(exist_ok=True)
    return path


def command(*args: str, workdir: Path | None = None) -> list[str]:
    return [sys.executable, str(LAUNCH), *args, *([f"--workdir={workdir}"] if workdir is not None else [])]


def launch(args: tuple[str, ...] | list[str], workdir: Path | None, cache_dir: Path,
           timeout: float = RUN_TIMEOUT_S, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI to completion (from the repository root); returns the completed process (text output)."""
    return subprocess.run(command(*args, workdir=workdir), cwd=REPO, env=run_env(cache_dir, **env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def start(args: tuple[str, ...] | list[str], workdir: Path, cache_dir: Path) -> subprocess.Popen:
    """Start the CLI in its own process group; stderr (progress lines) is a text pipe, stdout is discarded."""
    return subprocess.Popen(command(*args, workdir=workdir), cwd=REPO, env=run_env(cache_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    """Read the process's stderr until a line starting with ``prefix``; returns the lines read.

    Blocking reads, no polling; a process that exits first ends the wait (the caller's assertions then fail).
    """
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"the run ended before printing {prefix!r}; stderr:\n{''.join(seen)[-4000:]}")


def shared_run(tmp_path_factory, name: str, args: tuple[str, ...]) -> tuple[Path, subprocess.CompletedProcess]:
    """A finished run of ``args`` in ``<basetemp>/shared/<name>``, launched once per pytest session.

    Tests must not modify the returned workdir (copy it first).
    """
    key = (name, *args)
    if key not in _SHARED:
        workdir = tmp_path_factory.getbasetemp() / "shared" / name
        if workdir.exists():
            shutil.rmtree(workdir)
        result = launch(args, workdir, cache_dir_for(tmp_path_factory))
        assert result.returncode == 0, f"{name} run failed:\n{result.stderr[-6000:]}"
        _SHARED[key] = (workdir, result)
    return _SHARED[key]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def without_wall_clock(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics records minus the wall-clock keys (``time/...``), which legitimately differ between runs."""
    return [{k: v for k, v in record.items() if not k.startswith("time/")} for record in records]


def tree_digest(directory: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``directory`` (byte-identity checks)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def safetensors_arrays(policy_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    arrays: dict[str, np.ndarray] = {}
    for path in sorted(policy_dir.glob("*.safetensors")):
        arrays.update(load_file(str(path)))
    return arrays


def checkpoint_steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
