"""The fork server ("zygote") behind the sandbox: one process per worker slot with the scientific stack pre-imported.

Started by ``sandbox.Sandbox`` as ``python -m exit_jax.domains.mle.zygote --slot N ...``. It reads one JSON job per
line on its stdin and answers one JSON result per line. At start-up it joins its slot's memory and pids cgroups, so
every job it forks is born inside them (moving each job in would cost an RCU grace period per job). Per job it
resets its slot's working directory (a size-capped tmpfs when mounting works), copies ``public/`` and
``solution.py`` in, and forks. The child

1. is forked as init of a fresh PID namespace (every process it spawns, daemons included, dies with it) inside the
   slot's network namespace (made once by the zygote: no interface is up and an unprivileged uid cannot bring one
   up, so no network), starts a new session and unshares its mount namespace (private ``/tmp``, ``/var/tmp``,
   ``/dev/shm`` and ``/proc``),
2. sets rlimits (CPU, address space, file size, process count, open files, no core dumps),
3. scrubs the environment, chdirs into the working directory and drops to the slot's own unprivileged uid/gid,
4. runs ``solution.py`` in-process with ``runpy`` (no interpreter start, no re-import of NumPy / pandas / sklearn).

The zygote drains stdout/stderr through pipes (keeping head and tail, killing on the output cap), enforces the
wall-clock timeout, learns of the child's exit through a pidfd (no polling interval between the solution's end and
the result), and at the end SIGKILLs every process of the slot's uid until none is left. Where a step is not
permitted (not root, no namespaces) it falls back and says so in ``isolation``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import stat
import sys
import time

from exit_jax.domains.mle.cgroups import SlotCgroups, open_slot_cgroups
from exit_jax.domains.mle.confine import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    PR_SET_CHILD_SUBREAPER,
    interpreter_paths,
    libc,
    mount,
    run_confined,
    setns,
    unshare,
)

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

PRELOAD = ("numpy", "pandas", "scipy.stats", "sklearn.base", "sklearn.compose", "sklearn.ensemble",
           "sklearn.feature_selection", "sklearn.impute", "sklearn.linear_model", "sklearn.metrics",
           "sklearn.model_selection", "sklearn.neighbors", "sklearn.neural_network", "sklearn.pipeline",
           "sklearn.preprocessing", "sklearn.svm")


def _fork_into_new_pid_namespace(own_pid_namespace: int) -> int:
    """``os.fork()`` whose child is init of a fresh PID namespace; this process's later children are forked into its
    own again (``own_pid_namespace``: an fd of its /proc/self/ns/pid)."""
    if not unshare(CLONE_NEWPID):
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWPID): {os.strerror(errno)}")
    try:
        pid = os.fork()
    except BaseException:
        setns(own_pid_namespace, CLONE_NEWPID)
        raise
    if pid:
        setns(own_pid_namespace, CLONE_NEWPID)
    return pid


def _collapse_into_huge_pages() -> int:
    """Asks the kernel to back the zygote's anonymous memory (the pre-imported stack: ~120 MB of 4 KiB pages) with
    2 MiB pages (``MADV_COLLAPSE``, Linux >= 6.1); a fork then copies one page-table entry per 2 MiB instead of 512,
    and the child's exit unmaps as few. Best effort: returns the bytes collapsed (0 where unsupported)."""
    huge, collapsed = 2 << 20, 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with open("/proc/self/maps") as handle:
        regions = [line.split() for line in handle]
    for fields in regions:
        if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # private anonymous memory and the brk heap only
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-start // huge) * huge, end // huge * huge
        if end > start and libc.madvise(start, end - start, 25) == 0:  # MADV_COLLAPSE
            collapsed += end - start
    return collapsed


def _probe_namespaces() -> int:
    """The namespace flags the sandbox can use here (0 when none), tried in a forked child as ``Slot`` will use them:
    a network namespace, a child forked into a new PID namespace that unshares its mount namespace, and the return
    of later children to the forking process's own PID namespace."""
    flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID
    pid = os.fork()
    if pid == 0:
        try:
            if not unshare(CLONE_NEWNET):
                os._exit(1)
            child = _fork_into_new_pid_namespace(os.open("/proc/self/ns/pid", os.O_RDONLY))
            if child == 0:
                os._exit(0 if unshare(CLONE_NEWNS) else 1)
            os._exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
        except BaseException:  # noqa: BLE001 - any failure means: no namespaces
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return flags if os.waitstatus_to_exitcode(status) == 0 else 0


class Slot:
    """One worker slot: its uid, working directory and what isolation is available."""

    def __init__(self, slot: int, uid: int, work_dir: str, disk_mb: int, isolate: bool = True,
                 protected: tuple[str, ...] = (), lifeline: int = -1):
        self.uid = uid
        self.work_dir = work_dir
        # What a job may see of the interpreter (read-only, wherever it lives; see confine._python_paths).
        self.python_paths = interpreter_paths(protected)
        # Readable (end of file) once the sandbox's owner is gone: the zygote then kills its job and leaves.
        self.lifeline = lifeline
        self.root = os.geteuid() == 0 and isolate
        self.namespaces = _probe_namespaces() if self.root else 0
        self.tmpfs = False
        os.makedirs(work_dir, mode=0o711, exist_ok=True)
        if self.root and unshare(CLONE_NEWNS):
            # A private mount namespace for the zygote: the slot's tmpfs vanishes with it.
            try:
                mount(None, "/", None, MS_REC | MS_PRIVATE, None)
                mount("tmpfs", work_dir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk_mb}m,mode=0711")
                self.tmpfs = True
            except OSError:
                self.tmpfs = False
        if self.namespaces and not unshare(CLONE_NEWNET):
            self.namespaces = 0
        # With PID namespaces every job is forked into a fresh one (``fork_job``); this fd brings later children
        # (the uid sweep's helper) back into the zygote's own.
        self._own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY) if self.namespaces else -1
        if self.root:
            groups, note = open_slot_cgroups(slot)
        else:
            groups, note = None, "not root"
        self.cgroups = groups or SlotCgroups(0, {}, {})
        self.isolation = {
            "cgroups": sorted(self.cgroups.directories), "cgroup_version": self.cgroups.version or None,
            "uid_drop": self.root, "network_namespace": bool(self.namespaces & CLONE_NEWNET),
            "pid_namespace": bool(self.namespaces & CLONE_NEWPID),
            "private_tmp": bool(self.namespaces & CLONE_NEWNS),
            "disk_quota": "tmpfs" if self.tmpfs else "watchdog",
            "kill": "uid sweep + pid namespace" if self.root else "process group",
            "mode": "isolated" if self.root and self.namespaces else (
                "fallback: not root or no namespaces; no uid drop, network or private /tmp; private answers are "
                "not copied into the working directory but are readable by path"),
        }
        if note:
            self.isolation["cgroup_note"] = note

    def fork_job(self) -> int:
        """``os.fork()`` for a job: with namespaces the child is init of a new PID namespace, already in the slot's
        network namespace (the zygote's own, made once in ``__init__`` rather than per job)."""
        return _fork_into_new_pid_namespace(self._own_pid_namespace) if self.namespaces else os.fork()

    def reset(self) -> None:
        for entry in os.scandir(self.work_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)

    def set_cgroup_limits(self, limits: dict) -> None:
        # pids: + 1 for the zygote itself, which is in the group.
        self.cgroups.set_limits(int(limits["memory_mb"]) << 20, int(limits["nproc"]) + 1)

    def memory_limit_hit(self) -> bool:
        """Whether the job's tree hit the cgroup memory limit (an OOM kill or a failed charge since the job began)."""
        return self.cgroups.memory_limit_hit()

    def remove_cgroups(self) -> None:
        self.cgroups.remove()

    def processes(self) -> list[int]:
        """Host pids owned by the slot's uid.

        Every process of a job is born in the slot's pids cgroup and cannot leave it (its uid may not write any
        ``cgroup.procs``), so when the group's task count is the zygote's own there is none, and the /proc scan is
        skipped."""
        tasks = self.cgroups.pids_current()
        if tasks is not None and tasks <= len(os.listdir("/proc/self/task")):
            return []
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid != self.uid:
                        continue
                    with open(f"/proc/{name}/stat", "rb") as handle:
                        state = handle.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state != b"Z":  # zombies hold no resources; the subreaper collects them
                    pids.append(int(name))
        return pids

    def kill_all(self, group: int | None) -> None:
        """SIGKILL every process of the slot's uid (root) or the job's process group (fallback)."""
        if not self.root:
            # Fallback: the job's process group, plus every descendant (orphans, double-forked daemons included,
            # are re-parented to the zygote because it is a child subreaper).
            for _ in range(200):
                victims = _descendants(os.getpid())
                if group is not None:
                    try:
                        os.killpg(group, signal.SIGKILL)
                    except OSError:
                        pass
                _sigkill(victims)
                reap_orphans()
                if not victims:
                    return
                time.sleep(0.002)
            return
        for _ in range(200):
            if not self.processes():
                return
            # kill(-1) from a process running as the uid reaches all of that uid's processes at once.
            try:
                pid = os.fork()
            except OSError:  # the slot's pids cgroup is full (the zygote is in it): kill them one by one
                _sigkill(self.processes())
                time.sleep(0.002)
                continue
            if pid == 0:
                try:
                    os.setgid(self.uid)
                    os.setuid(self.uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            reap_orphans()
            time.sleep(0.002)


def _sigkill(pids: list[int]) -> None:
    """SIGKILL each pid; one that is already gone is skipped."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _descendants(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/<pid>/task/*/children)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    kids = [int(k) for k in handle.read().split()]
            except OSError:
                continue
            found.extend(kids)
            frontier.extend(kids)
    return found


def reap_orphans() -> None:
    """Collect exited orphans re-parented to the zygote (it is a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class _Stream:
    """Head and tail of a pipe's bytes and their total count."""

    def __init__(self, keep: int):
        self.keep, self.head, self.tail, self.total = keep, bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail = (self.tail + chunk)[-self.keep:]

    def text(self) -> str:
        skipped = self.total - len(self.head) - len(self.tail)
        middle = f"\n... [{skipped} bytes cut] ...\n".encode() if skipped > 0 else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", "replace")


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _copy_submission(slot: Slot, dest: str, max_bytes: int) -> str | None:
    """Copy submission.csv out if it is a plain file owned by the solution; never follow its links."""
    source = os.path.join(slot.work_dir, "submission.csv")
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        return "no submission.csv written"
    if not stat.S_ISREG(info.st_mode):
        return "submission.csv is not a regular file"
    if slot.root and info.st_uid != slot.uid:
        return "submission.csv not written by the solution"
    if info.st_size > max_bytes:
        return f"submission.csv too large ({info.st_size} bytes)"
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
    return None


class OwnerGone(Exception):
    """The process that owns the sandbox died (its end of the lifeline pipe closed): nothing is left to serve."""


def run_job(slot: Slot, job: dict) -> dict:
    limits = job["limits"]
    slot.kill_all(None)
    slot.reset()
    shutil.copytree(job["public_dir"], os.path.join(slot.work_dir, "public"))
    with open(os.path.join(slot.work_dir, "solution.py"), "w") as handle:
        handle.write(job["code"])
    if slot.root:
        os.chown(slot.work_dir, slot.uid, slot.uid)
        os.chmod(slot.work_dir, 0o700)
    slot.set_cgroup_limits(limits)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    sys.stdout.flush()  # nothing buffered in the zygote may end up in the solution's output
    sys.stderr.flush()
    pid = slot.fork_job()
    if pid == 0:
        run_confined(slot, job, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    try:
        exited = os.pidfd_open(pid)  # readable once the child has exited
    except (AttributeError, OSError):  # no pidfd (Linux < 5.3): the loop polls the exit every 50 ms
        exited = None
    try:
        return _supervise(slot, job, pid, exited, out_r, err_r, start)
    finally:
        if exited is not None:
            os.close(exited)


def _supervise(slot: Slot, job: dict, pid: int, exited: int | None, out_r: int, err_r: int, start: float) -> dict:
    """Drain the job's output, enforce its limits, and wait for it and everything it started to end."""
    limits = job["limits"]
    streams = {out_r: _Stream(limits["keep_bytes"]), err_r: _Stream(limits["keep_bytes"])}
    open_fds, status, reason = [out_r, err_r], None, None
    next_disk_check = start
    while True:
        now = time.monotonic()
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
                slot.kill_all(pid)  # whatever the solution left running dies now, pipes close
        if status is not None and not open_fds:
            break
        if now - start > limits["timeout_s"]:
            reason = reason or "timeout"
        if sum(s.total for s in streams.values()) > limits["output_bytes"]:
            reason = reason or "output_limit"
        if not slot.tmpfs and now >= next_disk_check:
            next_disk_check = now + 0.1
            if _dir_bytes(slot.work_dir) > limits["disk_mb"] << 20:
                reason = reason or "disk_limit"
        if reason is not None:
            if status is None:  # kill and reap the job's own child first, then sweep the rest
                os.kill(pid, signal.SIGKILL)
                status = os.waitpid(pid, 0)[1]
            slot.kill_all(pid)
            for fd in open_fds:
                os.close(fd)
            open_fds = []
            break
        wait = limits["timeout_s"] - (now - start)
        if not slot.tmpfs:
            wait = min(wait, next_disk_check - now)
        if status is None and exited is None:
            wait = min(wait, 0.05)
        watched = open_fds + ([exited] if status is None and exited is not None else [])
        watched += [slot.lifeline] if slot.lifeline >= 0 else []
        ready, _, _ = select.select(watched, [], [], min(max(wait, 0.0), 1.0))
        if slot.lifeline in ready:
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            slot.kill_all(pid)
            raise OwnerGone
        for fd in ready:
            if fd == exited:
                continue  # the next pass's waitpid collects the exit status
            chunk = os.read(fd, 1 << 16)
            if chunk:
                streams[fd].add(chunk)
            else:
                os.close(fd)
                open_fds.remove(fd)
    runtime = time.monotonic() - start
    slot.kill_all(pid)
    code = os.waitstatus_to_exitcode(status)
    submission_error = None
    if reason is None:
        submission_error = _copy_submission(slot, job["submission_dest"], limits["submission_bytes"])
    return {
        "exit_code": code, "reason": reason, "runtime_s": runtime, "stdout": streams[out_r].text(),
        "stderr": streams[err_r].text(), "stdout_bytes": streams[out_r].total,
        "stderr_bytes": streams[err_r].total, "submission_error": submission_error,
        "leftover_processes": len(slot.processes()) if slot.root else 0, "isolation": slot.isolation,
        "memory_limit_hit": slot.memory_limit_hit(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--disk-mb", type=int, default=1024)
    parser.add_argument("--no-isolation", action="store_true", help="the non-root fallback, even as root")
    parser.add_argument("--protect", action="append", default=[],
                        help="a path no job may see, nor any directory containing it (repeatable)")
    parser.add_argument("--lifeline", type=int, default=-1,
                        help="read end of a pipe the owner never writes: its end of file means the owner died")
    args = parser.parse_args()
    # The protocol uses private copies of stdin/stdout; stray prints from imports go to stderr.
    channel_in = os.fdopen(os.dup(0), "r")
    channel_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    _collapse_into_huge_pages()  # after the imports: what every job's fork copies and every exit unmaps
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    slot = Slot(args.slot, args.uid, args.work_dir, args.disk_mb, isolate=not args.no_isolation,
                protected=tuple(args.protect), lifeline=args.lifeline)
    try:
        channel_out.write(json.dumps({"ready": True, "isolation": slot.isolation}) + "\n")
        channel_out.flush()
        for line in channel_in:  # ends when the owner closes stdin or dies
            job = json.loads(line)
            try:
                result = run_job(slot, job)
            except OwnerGone:
                break
            except Exception as err:  # noqa: BLE001 - keep serving; the job is reported as a sandbox error
                slot.kill_all(None)
                result = {"exit_code": None, "reason": "sandbox_error", "runtime_s": 0.0, "stdout": "",
                          "stderr": f"sandbox error: {err!r}", "stdout_bytes": 0, "stderr_bytes": 0,
                          "submission_error": None, "leftover_processes": 0, "isolation": slot.isolation}
            channel_out.write(json.dumps(result) + "\n")
            channel_out.flush()
    except BrokenPipeError:
        pass  # the owner is gone
    finally:
        slot.kill_all(None)
        slot.remove_cgroups()

if __name__ == "__main__":
    main()
