"""The confinement of one solution process: namespaces, private mounts, rlimits, environment, uid drop, running it.

``run_confined`` is called by the zygote (``zygote.py``) in the child it forks for a job and never returns. See the
zygote's docstring for the sequence; this file holds the Linux-specific pieces (``unshare`` and ``mount`` through
ctypes, because Python 3.11 has neither).
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat
import sys
from typing import Any

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_MOVE = 1, 2, 4, 32, 4096, 8192
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
SETUP_FAILED, LEFT_PROCESSES = 97, 96
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype or source} on {target}: {os.strerror(errno)}")


def unshare(flags: int) -> bool:
    return libc.unshare(flags) == 0


def setns(fd: int, nstype: int) -> None:
    if libc.setns(fd, nstype) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _blocked_parent(path: str) -> tuple[str, str] | None:
    """The first ancestor of ``path`` that others cannot traverse, and its child on the way to ``path``."""
    parts = os.path.realpath(path).split("/")[1:]
    current = "/"
    for part in parts:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current, os.path.join(current, part)
        current = os.path.join(current, part)
    return None


def _python_paths(site_packages: list[str]) -> set[str]:
    """The Python installation's directories that exist: prefixes, site-packages, the interpreter's directory and
    the sys.path entries inside them. (A virtual environment can list site-packages directories that were never
    created; stat-ing their parents failed every solution's setup on such a machine.)"""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site_packages}
    # Only the installation: sys.path entries outside it (e.g. the project via PYTHONPATH) stay hidden.
    needed = roots | {os.path.dirname(os.path.realpath(sys.executable))} | {
        p for p in sys.path if p and any(p.startswith(r) for r in roots)}
    return {p for p in needed if os.path.isdir(p)}


def _expose_python() -> None:
    """Make the Python installation readable to the unprivileged uid when it lives under a private directory.

    With Python under e.g. ``/root/.pyenv`` (``/root`` is mode 700) the solution's lazy imports would fail. Inside
    the job's private mount namespace the private directory is replaced by an empty tmpfs into which only the
    Python installation is bind-mounted back, read-only: everything else there (``~/.cache`` with the private
    answers included) stays invisible. Needs the private ``/tmp`` for staging.
    """
    import site

    needed = _python_paths(site.getsitepackages())
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
                mount(child, stage, None, MS_BIND | MS_REC, None)
                staged.append((stage, child))
            mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
            for stage, child in staged:
                os.mkdir(child)
                mount(stage, child, None, MS_MOVE, None)
                mount(None, child, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, None)
                os.rmdir(stage)


def _limit(resource_name: str, value: int, hard: int | None = None) -> None:
    import resource

    res = getattr(resource, resource_name)
    resource.setrlimit(res, (value, value if hard is None else hard))


def run_confined(slot: Any, job: dict, out_w: int, err_w: int) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(3, 65536)
        limits = job["limits"]
        if slot.cgroups:
            # Forked inside the slot's cgroups (the zygote joined them once), so the whole job tree is charged
            # there. When it hits the memory limit the kernel kills the process with the highest badness in the
            # group: the maximal adjustment (inherited by everything the job starts) makes that a job process,
            # never the zygote beside it.
            if not write_file("/proc/self/oom_score_adj", "1000"):
                raise OSError("cannot raise oom_score_adj")
        if slot.namespaces:
            # This process is already init of a fresh PID namespace and in the slot's network namespace (the zygote
            # arranged both before forking it); the mount namespace is its own from here on.
            if not unshare(CLONE_NEWNS):
                raise OSError(ctypes.get_errno(), "unshare")
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV, None)
            for private in ("/tmp", "/var/tmp", "/dev/shm"):
                if os.path.isdir(private) and not slot.work_dir.startswith(private.rstrip("/") + "/"):
                    mount("tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
            _expose_python()
        # CPU time: SIGXCPU at cpu_s ends the run with exit code 152, reported as cpu_limit. The handler is needed
        # because the solution runs as init of its PID namespace, where a signal's default action does not apply;
        # the hard limit 2 s later (SIGKILL) covers code that never returns to the interpreter or replaces it.
        signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
        _limit("RLIMIT_CPU", int(limits["cpu_s"]), int(limits["cpu_s"]) + 2)
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
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except BaseException as err:  # noqa: BLE001 - report any setup failure and leave
        os.write(2, f"sandbox setup failed: {type(err).__name__}: {err}\n".encode())  # str() names the file
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
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
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


def make_cgroups(slot: int) -> dict[str, str]:
    """Per-slot cgroup-v1 ``memory`` and ``pids`` groups nested under the zygote's own (so outer limits still hold).

    The job's whole process tree is charged together: rlimits are per process, so without this 64 processes of 4 GB
    each could exhaust the host. Returns {controller: directory}; empty where cgroups are not writable.
    """
    groups = {}
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in ("memory", "pids"):
            if controller in controllers.split(","):
                directory = f"/sys/fs/cgroup/{controller}{path.rstrip('/')}/exit_jax_{os.getpid()}_slot{slot}"
                try:
                    os.makedirs(directory, exist_ok=True)
                    groups[controller] = directory
                except OSError:
                    pass
    return groups


def join_cgroups(groups: dict[str, str]) -> dict[str, str]:
    """Moves this process (the zygote) into its slot's cgroups, once; a controller it cannot join is dropped.

    The jobs it forks then start inside the groups: moving each job in instead (a write to ``cgroup.procs`` per
    job) waits for an RCU grace period in the kernel, 7-18 ms per job measured here. Pages the zygote touched
    before the move stay charged where they were (cgroup v1 does not move charges), so a job's memory limit
    counts what the job and its copy-on-write faults allocate. The zygote's own exemption from the group's OOM
    kills is the job's ``oom_score_adj`` of 1000 (``run_confined``; lowering the zygote's needs a capability a
    container may lack): every job process outranks it.
    """
    joined = {}
    for controller, directory in groups.items():
        if write_file(os.path.join(directory, "cgroup.procs"), str(os.getpid())):
            joined[controller] = directory
        else:
            try:
                os.rmdir(directory)
            except OSError:
                pass
    return joined


def write_file(path: str, value: str) -> bool:
    try:
        with open(path, "w") as handle:
            handle.write(value)
        return True
    except OSError:
        return False
