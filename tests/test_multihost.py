"""Multi-host correctness with 2 local processes through ``jax.distributed`` on CPU (gloo collectives).

Both processes run the same ``launch/tpu_run.py`` math smoke command (2 fake CPU devices each, one 4-device global
mesh) through a small driver that traces, per iteration and per process: a digest of the selected instances, of the
train batch handed to the learner, and of the parameters after the update (gathered across processes); and which
process constructed the metrics logger, wrote the report and exported the policy. The test asserts both processes
built identical batches, held identical parameters after every update and at the end, and that process 0 alone
wrote the run's outputs. A hang or a crash in one process fails the test within the timeout instead of blocking.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests import run_helpers as rh

TIMEOUT_S = 420
ITERATIONS = 2
ARGS = ("--config=experiments/math.py:smoke", f"--config.train.num_iterations={ITERATIONS}", "--config.eval.K=1",
        "--config.eval.max_tasks=1", "--config.rl.weight_decay=0.5", "--config.rl.warmup_steps=4")

DRIVER = r'''
"""Runs launch/tpu_run.py with tracing wrappers; writes the trace to $EXIT_JAX_TEST_TRACE."""
import hashlib, json, os, runpy, sys

sys.path.insert(0, os.environ["EXIT_JAX_TEST_REPO"])
from exit_jax.tpu_vm import maybe_initialize_distributed

maybe_initialize_distributed()  # before anything touches devices (the launcher's own call is then a no-op)
import jax
import numpy as np
from jax.experimental import multihost_utils

import exit_jax.metrics, exit_jax.models.hf_io, exit_jax.report, exit_jax.rl.learner, exit_jax.trainer

trace, trainers = [], []


def digest_arrays(arrays):
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(np.asarray(arrays[key]))
        h.update(f"{key}:{value.dtype}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def params_digest(params):
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    gathered = {jax.tree_util.keystr(path): multihost_utils.process_allgather(leaf, tiled=True)
                for path, leaf in leaves}
    return digest_arrays(gathered)


def wrap(cls, name, before=None, after=None):
    original = getattr(cls, name)

    def wrapper(*args, **kwargs):
        if before is not None:
            before(*args, **kwargs)
        out = original(*args, **kwargs)
        if after is not None:
            after(out, *args, **kwargs)
        return out

    setattr(cls, name, wrapper)


Trainer, Learner = exit_jax.trainer.Trainer, exit_jax.rl.learner.GRPOLearner
wrap(Trainer, "__init__", after=lambda out, self, *a, **k: trainers.append(self))
wrap(Trainer, "_select", after=lambda sel, self: trace.append(
    {"event": "select", "iteration": self.iteration, "digest": hashlib.sha256(
        repr(sel.instances).encode()).hexdigest(), "count": len(sel.instances)}))
wrap(Learner, "update", before=lambda self, batch, *a, **k: trace.append(
    {"event": "batch", "digest": digest_arrays(batch), "rows": int(np.shape(batch["tokens"])[0])}),
     after=lambda out, self, *a, **k: trace.append({"event": "params", "digest": params_digest(self.params)}))
for module, name in ((exit_jax.metrics.MetricsLogger, "__init__"), (exit_jax.report, "write_report"),
                     (exit_jax.models.hf_io, "export_hf_model")):
    wrap(module, name, before=lambda *a, _name=name, **k: trace.append({"event": "wrote", "what": _name}))

code = 0
sys.argv = ["launch/tpu_run.py", *sys.argv[1:]]
try:
    runpy.run_path(os.path.join(os.environ["EXIT_JAX_TEST_REPO"], "launch", "tpu_run.py"), run_name="__main__")
except SystemExit as exit_:
    code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
if code == 0 and trainers:
    trace.append({"event": "final_params", "digest": params_digest(trainers[-1].learner.params),
                  "iteration": trainers[-1].iteration})
with open(os.environ["EXIT_JAX_TEST_TRACE"], "w") as stream:
    json.dump({"process": jax.process_index(), "count": jax.process_count(), "code": code, "trace": trace}, stream)
sys.exit(code)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_processes(driver: Path, workdir: Path, tmp_path: Path, cache: Path) -> list[tuple[int, str]]:
    """Start both processes; if one fails, end the other at once; returns [(returncode, stderr tail)]."""
    coordinator = f"127.0.0.1:{free_port()}"
    processes = []
    for index in range(2):
        env = rh.run_env(cache, EXIT_JAX_COORDINATOR=coordinator, EXIT_JAX_NUM_PROCESSES="2",
                         EXIT_JAX_PROCESS_ID=str(index), EXIT_JAX_TEST_REPO=str(rh.REPO),
                         EXIT_JAX_TEST_TRACE=str(tmp_path / f"trace_{index}.json"))
        log = open(tmp_path / f"process_{index}.log", "w")  # noqa: SIM115 (closed below)
        processes.append((subprocess.Popen([sys.executable, str(driver), *ARGS, f"--workdir={workdir}"],
                                           cwd=rh.REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True), log))
    finished: queue.Queue = queue.Queue()
    for index, (process, _) in enumerate(processes):
        threading.Thread(target=lambda i=index, p=process: finished.put((i, p.wait())), daemon=True).start()
    try:
        for _ in processes:
            _, code = finished.get(timeout=TIMEOUT_S)
            if code != 0:
                break
    except queue.Empty:
        pass
    finally:
        for process, log in processes:
            if process.poll() is None:  # hung, or its peer failed: end its process group
                signal_group(process)
            process.wait()
            log.close()
    return [(process.returncode, (tmp_path / f"process_{i}.log").read_text()[-4000:])
            for i, (process, _) in enumerate(processes)]


def signal_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_two_processes_identical_batches_and_parameters(tmp_path, tmp_path_factory):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    workdir = tmp_path / "run"
    results = run_processes(driver, workdir, tmp_path, rh.cache_dir_for(tmp_path_factory))
    for index, (code, tail) in enumerate(results):
        assert code == 0, f"process {index} exited with {code}:\n{tail}"
    traces = [json.loads((tmp_path / f"trace_{i}.json").read_text()) for i in range(2)]
    assert [t["process"] for t in traces] == [0, 1] and all(t["count"] == 2 for t in traces)

    def events(trace, kind):
        return [e for e in trace["trace"] if e["event"] == kind]

    for kind in ("select", "batch", "params", "final_params"):
        zero, one = events(traces[0], kind), events(traces[1], kind)
        assert zero == one, f"processes differ in {kind}: {zero} vs {one}"
    assert len(events(traces[0], "select")) == ITERATIONS
    assert all(e["rows"] == 2 * 4 for e in events(traces[0], "batch"))  # prompts x G of the smoke preset
    params = [e["digest"] for e in events(traces[0], "params")]
    assert len(set(params)) == ITERATIONS  # the parameters moved every iteration (weight decay), identically

    wrote = [[e["what"] for e in events(t, "wrote")] for t in traces]
    assert wrote[1] == [], f"process 1 wrote run outputs: {wrote[1]}"
    assert {"__init__", "write_report", "export_hf_model"} <= set(wrote[0])
    records = rh.read_jsonl(workdir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, ITERATIONS + 1))
    assert (workdir / "report.md").is_file() and (workdir / f"eval/step_{ITERATIONS:06d}.json").is_file()
    assert ITERATIONS in rh.checkpoint_steps(workdir)
