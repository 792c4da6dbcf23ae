"""The fork server ("zygote") behind the sandbox: one process per worker slot with the scientific stack pre-imported.

Started by ``sandbox.Sandbox`` as ``python -m exit_jax.domains.mle.zygote --slot N ...``. It reads one JSON job per
line on its stdin and answers one JSON result per line. Per job it resets its slot's working directory (a size-capped
tmpfs when mounting works), copies ``public/`` and ``solution.py`` in, and forks. The child

1. starts a new session and unshares network, mount and PID namespaces (no network; private ``/tmp``, ``/var/tmp``,
   ``/dev/shm`` and ``/proc``; it is init of its own PID namespace, so every process it spawns, daemons included,
   dies with it),
2. sets rlimits (CPU, address space, file size, process count, open files, no core dumps),
3. scrubs the environment, chdirs into the working directory and drops to the slot's own unprivileged uid/gid,
4. runs ``solution.py`` in-process with ``runpy`` (no interpreter start, no re-import of NumPy / pandas / sklearn).

The zygote drains stdout/stderr through pipes (keeping head and tail, killing on the output cap), enforces the
wall-clock timeout, and at the end SIGKILLs every process of the slot's uid until none is left. Where a step is not
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

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

PRELOAD = ("numpy", "pandas", "scipy.stats", "sklearn.base", "sklearn.compose", "sklearn.ensemble",
           "sklearn.feature_selection", "sklearn.impute", "sklearn.linear_model", "sklearn.metrics",
           "sklearn.model_selection", "sklearn.neighbors", "sklearn.neural_network", "sklearn.pipeline",
           "sklearn.preprocessing", "sklearn.svm")
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_MOVE = 1, 2, 4, 32, 4096, 8192
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
SETUP_FAILED, LEFT_PROCESSES = 97, 96
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: s.encode() if s is not None else None
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype or source} on {target}: {os.strerror(errno)}")


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


def _probe_namespaces() -> int:
    """Which of the namespace flags a forked child may unshare here (0 when none)."""
    flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _unshare(flags) else 1)
    _, status = os.waitpid(pid, 0)
    return flags if os.waitstatus_to_exitcode(status) == 0 else 0


class Slot:
    """One worker slot: its uid, working directory and what isolation is available."""

    def __init__(self, slot: int, uid: int, work_dir: str, disk_mb: int, isolate: bool = True):
        self.uid = uid
        self.work_dir = work_dir
        self.root = os.geteuid() == 0 and isolate
        self.namespaces = _probe_namespaces() if self.root else 0
        self.tmpfs = False
        os.makedirs(work_dir, mode=0o711, exist_ok=True)
        if self.root and _unshare(CLONE_NEWNS):
            # A private mount namespace for the zygote: the slot's tmpfs vanishes with it.
            try:
                _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
                _mount("tmpfs", work_dir, "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk_mb}m,mode=0711")
                self.tmpfs = True
            except OSError:
                self.tmpfs = False
        self.isolation = {
            "uid_drop": self.root, "network_namespace": bool(self.namespaces & CLONE_NEWNET),
            "pid_namespace": bool(self.namespaces & CLONE_NEWPID),
            "private_tmp": bool(self.namespaces & CLONE_NEWNS),
            "disk_quota": "tmpfs" if self.tmpfs else "watchdog",
            "kill": "uid sweep + pid namespace" if self.root else "process group",
            "mode": "isolated" if self.root and self.namespaces else (
                "fallback: not root or no namespaces; no uid drop, network or private /tmp; private answers are "
                "not copied into the working directory but are readable by path"),
        }

    def reset(self) -> None:
        for entry in os.scandir(self.work_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)

    def processes(self) -> list[int]:
        """Host pids owned by the slot's uid."""
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
                for victim in victims:
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except OSError:
                        pass
                reap_orphans()
                if not victims:
                    return
                time.sleep(0.002)
            return
        for _ in range(200):
            if not self.processes():
                return
            # kill(-1) from a process running as the uid reaches all of that uid's processes at once.
            pid = os.fork()
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


def _blocked_parent(path: str) -> tuple[str, str] | None:
    """The first ancestor of ``path`` that others cannot traverse, and its child on the way to ``path``."""
    parts = os.path.realpath(path).split("/")[1:]
    current = "/"
    for part in parts:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current, os.path.join(current, part)
        current = os.path.join(current, part)
    return None


def _expose_python() -> None:
    """Make the Python installation readable to the unprivileged uid when it lives under a private directory.

    With Python under e.g. ``/root/.pyenv`` (``/root`` is mode 700) the solution's lazy imports would fail. Inside
    the job's private mount namespace the private directory is replaced by an empty tmpfs into which only the
    Python installation is bind-mounted back, read-only: everything else there (``~/.cache`` with the private
    answers included) stays invisible. Needs the private ``/tmp`` for staging.
    """
    import site

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    # Only the installation: sys.path entries outside it (e.g. the project via PYTHONPATH) stay hidden.
    needed = roots | {os.path.dirname(os.path.realpath(sys.executable))} | {
        p for p in sys.path if p and os.path.isdir(p) and any(p.startswith(r) for r in roots)}
    for _ in range(8):
        blocked: dict[str, set[str]] = {}
        for path in needed:
            found = _blocked_parent(path)
            if found:
                blocked.setdefault(found[0], set()).add(found[1])
        if not blocked:
            return
        for index, (parent, children) in enumerate(sorted(blocked.items())):
            staged = []
            for number, child in enumerate(sorted(children)):
                stage = f"/tmp/.expose{index}_{number}"
                os.mkdir(stage)
                _mount(child, stage, None, MS_BIND | MS_REC, None)
                staged.append((stage, child))
            _mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
            for stage, child in staged:
                os.mkdir(child)
                _mount(stage, child, None, MS_MOVE, None)
                _mount(None, child, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, None)
                os.rmdir(stage)


def _limit(resource_name: str, value: int) -> None:
    import resource

    res = getattr(resource, resource_name)
    resource.setrlimit(res, (value, value))


def _child(slot: Slot, job: dict, out_w: int, err_w: int) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(3, 65536)
        limits = job["limits"]
        if slot.namespaces:
            if not _unshare(slot.namespaces):
                raise OSError(ctypes.get_errno(), "unshare")
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            pid = os.fork()  # the grandchild is init of the new PID namespace
            if pid:
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                os._exit(code if code >= 0 else 128 - code)
            _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV, None)
            for private in ("/tmp", "/var/tmp", "/dev/shm"):
                if os.path.isdir(private) and not slot.work_dir.startswith(private.rstrip("/") + "/"):
                    _mount("tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
            _expose_python()
        _limit("RLIMIT_CPU", int(limits["cpu_s"]))
        _limit("RLIMIT_AS", int(limits["memory_mb"]) << 20)
        _limit("RLIMIT_FSIZE", int(limits["file_mb"]) << 20)
        _limit("RLIMIT_NOFILE", int(limits["nofile"]))
        _limit("RLIMIT_CORE", 0)
        os.chdir(slot.work_dir)
        os.environ.clear()
        os.environ.update({
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": slot.work_dir, "LANG": "C.UTF-8",
            "PUBLIC_RESOURCE_PATH": os.path.join(slot.work_dir, "public"),
            "SUBMISSION_PATH": os.path.join(slot.work_dir, "submission.csv"),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",
        })
        if slot.root:
            os.setgroups([])
            os.setgid(slot.uid)
            os.setuid(slot.uid)
        # NPROC counts the uid's processes; set after the drop so the zygote's own processes don't count.
        _limit("RLIMIT_NPROC", int(limits["nproc"]))
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except BaseException as err:  # noqa: BLE001 - report any setup failure and leave
        os.write(2, f"sandbox setup failed: {err!r}\n".encode())
        os._exit(SETUP_FAILED)
    import runpy
    import traceback

    code = 0
    sys.argv = ["solution.py"]
    sys.path.insert(0, slot.work_dir)
    try:
        runpy.run_path("solution.py", run_name="__main__")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:  # noqa: BLE001 - the solution's crash is the result
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        if slot.namespaces & CLONE_NEWPID and _stray_processes():
            os.write(2, b"\nsolution left background processes running (they were killed)\n")
            code = LEFT_PROCESSES
    finally:
        os._exit(code & 0xFF)


def _stray_processes() -> list[int]:
    """Live processes other than this one in the solution's PID namespace (its /proc shows only those)."""
    stray = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    if handle.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        stray.append(int(name))
            except (OSError, IndexError):
                pass
    return stray


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
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(slot, job, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
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
        ready, _, _ = select.select(open_fds, [], [], 0.05)
        for fd in ready:
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
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--disk-mb", type=int, default=1024)
    parser.add_argument("--no-isolation", action="store_true", help="the non-root fallback, even as root")
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
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    slot = Slot(args.slot, args.uid, args.work_dir, args.disk_mb, isolate=not args.no_isolation)
    channel_out.write(json.dumps({"ready": True, "isolation": slot.isolation}) + "\n")
    channel_out.flush()
    for line in channel_in:
        job = json.loads(line)
        try:
            result = run_job(slot, job)
        except Exception as err:  # noqa: BLE001 - keep serving; the job is reported as a sandbox error
            slot.kill_all(None)
            result = {"exit_code": None, "reason": "sandbox_error", "runtime_s": 0.0, "stdout": "",
                      "stderr": f"sandbox error: {err!r}", "stdout_bytes": 0, "stderr_bytes": 0,
                      "submission_error": None, "leftover_processes": 0, "isolation": slot.isolation}
        channel_out.write(json.dumps(result) + "\n")
        channel_out.flush()
    slot.kill_all(None)


if __name__ == "__main__":
    main()
