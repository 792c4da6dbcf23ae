"""Runs untrusted ``solution.py`` code: a pool of fork-server workers, one unprivileged uid per worker slot.

``Sandbox`` owns N zygote processes (``zygote.py``, N = cores by default), each with NumPy / pandas / scikit-learn
already imported, and hands each job to a free one. A job is (code, public directory); the result says how it ended
(exit code, ``reason`` = timeout / output_limit / disk_limit / sandbox_error), its captured and truncated output, the
runtime, and which isolation was in force. Grading lives in ``grading.py``; nothing here sees private answers.

The parent never forks itself (it may be a multi-threaded JAX trainer): the zygotes are started with ``subprocess``
and talk JSON lines over pipes.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Per-solution limits. ``cpu_s`` defaults to the wall-clock timeout."""

    timeout_s: float = 300.0
    cpu_s: float | None = None
    memory_mb: int = 4096
    file_mb: int = 256
    disk_mb: int = 512
    nproc: int = 64
    nofile: int = 256
    output_bytes: int = 16 << 20
    keep_bytes: int = 8192
    submission_bytes: int = 128 << 20

    def to_job(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cpu_s"] = max(1, int(self.cpu_s if self.cpu_s is not None else self.timeout_s))
        return d


@dataclasses.dataclass
class ExecutionResult:
    """How one solution run ended. ``submission_path`` is a host copy of submission.csv (None when absent)."""

    exit_code: int | None
    reason: str | None
    runtime_s: float
    stdout: str
    stderr: str
    submission_path: str | None
    submission_error: str | None
    leftover_processes: int
    isolation: dict[str, Any]
    memory_limit_hit: bool = False


class SandboxError(RuntimeError):
    """The sandbox itself cannot run solutions here (a worker cannot start, or a known-good solution fails)."""


def _claim_uid(start: int) -> tuple[int, Any]:
    """The first uid >= start not claimed by another live Sandbox (an flock held for the sandbox's lifetime)."""
    import fcntl

    lock_dir = Path(tempfile.gettempdir()) / "exit_jax_sandbox_uids"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    for uid in range(start, start + 4096):
        handle = open(lock_dir / f"{uid}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, handle
        except OSError:
            handle.close()
    raise RuntimeError(f"no free sandbox uid in [{start}, {start + 4096})")


def _protected_paths() -> list[str]:
    """Paths no job may see through the interpreter's exposed directories (see ``confine._python_paths``): the
    project's checkout (unless the package is installed in a site-packages directory), the answers' cache, $HOME."""
    from exit_jax.filelock import cache_home

    package_root = Path(__file__).resolve().parents[3]
    paths = [str(cache_home()), os.path.expanduser("~")]
    if package_root.name not in ("site-packages", "dist-packages"):
        paths.append(str(package_root))
    return paths


class _Worker:
    def __init__(self, slot: int, uid_base: int, work_root: Path, disk_mb: int, isolate: bool = True):
        uid, self._uid_lock = _claim_uid(uid_base + slot)
        self.slot, self.uid, self.disk_mb, self.isolate = slot, uid, disk_mb, isolate
        self.work_dir = work_root / f"slot{slot}"
        self.log_path = work_root / f"zygote{slot}.log"
        self.process: subprocess.Popen | None = None
        self.isolation: dict[str, Any] = {}
        self._lifeline: int | None = None

    def start(self) -> None:
        # A minimal environment: a forked solution can read its inherited environment block through
        # /proc/self/environ, so the trainer's variables (tokens, keys) must never reach the zygote.
        package_root = str(Path(__file__).resolve().parents[3])
        python_path = os.environ.get("PYTHONPATH")
        # PYTHONHASHSEED here, not only in the job's environment: a job runs inside the forked zygote's interpreter,
        # whose string hashing (set and dict-of-set iteration orders in a solution, e.g. a feature list built from
        # a set) is fixed when the zygote starts; a random seed made a solution's score differ in its last bits
        # between two processes grading the same code.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONPATH": package_root + (os.pathsep + python_path if python_path else "")}
        # The lifeline: this process holds the write end (never written, not inherited by other children); when it
        # dies by any signal the zygote reads end of file, kills its job and leaves.
        lifeline_read, self._lifeline = os.pipe()
        protect = [arg for path in _protected_paths() for arg in ("--protect", path)]
        try:
            with open(self.log_path, "w") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "exit_jax.domains.mle.zygote", "--slot", str(self.slot), "--uid",
                     str(self.uid), "--work-dir", str(self.work_dir), "--disk-mb", str(self.disk_mb),
                     "--lifeline", str(lifeline_read), *protect, *([] if self.isolate else ["--no-isolation"])],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                    start_new_session=True, pass_fds=(lifeline_read,))
        finally:
            os.close(lifeline_read)
        self.isolation = {}

    def ready(self) -> None:
        """Start the worker if needed and wait for its hello (imports done, isolation probed)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        if not self.isolation:
            hello = self.process.stdout.readline()
            if not hello:
                self.stop()
                try:
                    log = self.log_path.read_text(errors="replace").strip()[-2000:]
                except OSError:
                    log = ""
                raise SandboxError(f"sandbox worker {self.slot} ({sys.executable}) failed to start"
                                   + (f":\n{log}" if log else ""))
            self.isolation = json.loads(hello)["isolation"]

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        self.ready()
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.stop()
            return {"exit_code": None, "reason": "sandbox_error", "runtime_s": 0.0, "stdout": "",
                    "stderr": "sandbox worker died", "submission_error": None, "leftover_processes": 0,
                    "isolation": self.isolation}
        return json.loads(line)

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process = None
            self.isolation = {}
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None


class Sandbox:
    """A pool of fork-server workers running solutions in isolation.

    Args:
      workers: pool size (default: the number of cores).
      limits: per-solution limits.
      uid_base: worker slot i runs solutions as uid/gid ``uid_base + i`` (needs root; otherwise no uid drop).
      work_root: where slot directories live; by default a fresh root-only directory under /run or /tmp.
      isolate: False forces the unprivileged fallback (rlimits, process-group kill, no namespaces or uid drop);
        it is what runs automatically when not root. ``isolation`` on every result says which one ran.
    """

    def __init__(self, workers: int | None = None, limits: SandboxLimits | None = None,
                 uid_base: int = 60000, work_root: str | None = None, isolate: bool = True):
        self.limits = limits or SandboxLimits()
        self.workers = workers or os.cpu_count() or 1
        base = work_root or ("/run" if os.access("/run", os.W_OK) else None)
        self.work_root = Path(tempfile.mkdtemp(prefix="exit_jax_sandbox_", dir=base))
        os.chmod(self.work_root, 0o711)
        self.results_dir = Path(tempfile.mkdtemp(prefix="exit_jax_submissions_"))
        os.chmod(self.results_dir, 0o700)
        self._pool = [_Worker(i, uid_base, self.work_root, self.limits.disk_mb, isolate)
                      for i in range(self.workers)]
        self._free: queue.Queue[_Worker] = queue.Queue()
        for worker in self._pool:
            worker.start()  # all workers import NumPy / pandas / sklearn in parallel
            self._free.put(worker)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
        self._counter = 0
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @property
    def isolation(self) -> dict[str, Any]:
        """The isolation a worker reports (starts one if none has started)."""
        worker = self._free.get()
        try:
            worker.ready()
            return dict(worker.isolation)
        finally:
            self._free.put(worker)

    def run(self, code: str, public_dir: str | Path, limits: SandboxLimits | None = None) -> ExecutionResult:
        """Run one solution against a competition's public data."""
        with self._lock:
            self._counter += 1
            dest = self.results_dir / f"submission_{self._counter}.csv"
        job = {"code": code, "public_dir": str(public_dir), "submission_dest": str(dest),
               "limits": (limits or self.limits).to_job()}
        worker = self._free.get()
        try:
            raw = worker.run(job)
        finally:
            self._free.put(worker)
        return ExecutionResult(
            exit_code=raw["exit_code"], reason=raw["reason"], runtime_s=raw["runtime_s"], stdout=raw["stdout"],
            stderr=raw["stderr"], submission_path=str(dest) if dest.exists() else None,
            submission_error=raw["submission_error"], leftover_processes=raw["leftover_processes"],
            isolation=raw["isolation"], memory_limit_hit=raw.get("memory_limit_hit", False))

    def run_many(self, jobs: Sequence[tuple[str, str | Path]]) -> list[ExecutionResult]:
        """Run (code, public_dir) jobs in parallel on the pool; results in input order."""
        return list(self._executor.map(lambda job: self.run(*job), jobs))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        for worker in self._pool:
            worker.stop()
        import shutil

        shutil.rmtree(self.results_dir, ignore_errors=True)
        shutil.rmtree(self.work_root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
