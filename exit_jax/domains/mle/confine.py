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

from exit_jax.domains.mle.cgroups import write_file

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
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


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _pth_entries(site_dirs: list[str]) -> set[str]:
    """Directories that ``.pth`` files in the site directories add to ``sys.path`` (their ``import`` lines aside)."""
    found = set()
    for site_dir in site_dirs:
        try:
            names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            try:
                with open(os.path.join(site_dir, name), encoding="utf-8", errors="replace") as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    found.add(os.path.normpath(os.path.join(site_dir, line)))
    return found


def _python_paths(site_dirs: list[str], protected: tuple[str, ...] = ()) -> set[str]:
    """The directories of the interpreter the caller runs, as a solution needs them: the prefixes (a venv's and its
    base interpreter's), the site-packages directories (user site-packages included), the interpreter's directory,
    the ``sys.path`` entries inside those and the directories ``.pth`` files add.

    Hidden: ``sys.path`` entries that come from elsewhere (the caller's working directory, ``PYTHONPATH``: the
    project's checkout), any directory that would expose a ``protected`` path (one that is or contains it: the
    checkout, the answers' cache, ``$HOME``), and directories that do not exist (a virtual environment can list
    site-packages directories that were never created; stat-ing their parents failed every solution's setup).
    """
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site_dirs}
    needed = roots | {os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))} | {
        p for p in sys.path if p and any(_is_within(p, r) for r in roots)} | _pth_entries(site_dirs)
    guarded = [os.path.realpath(p) for p in protected if p]
    return {p for p in needed
            if os.path.isdir(p) and not any(_is_within(g, os.path.realpath(p)) for g in guarded)}


def interpreter_paths(protected: tuple[str, ...] = ()) -> list[str]:
    """``_python_paths`` of this interpreter's site directories (user site-packages included where enabled)."""
    import site

    site_dirs = list(site.getsitepackages())
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and os.path.isdir(user_site):
        site_dirs.append(user_site)
    return sorted(_python_paths(site_dirs, protected))


def _outermost(paths: list[str]) -> list[str]:
    """The paths not inside another one of them."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(_is_within(path, k) for k in kept):
            kept.append(path)
    return kept


def _private_mount(private: str, keep: list[str], writable: list[str] = (), options: str = "size=16m,mode=1777"
                   ) -> None:
    """Cover ``private`` with a fresh tmpfs, bind-mounting back only the ``keep`` paths under it (read-only) and the
    ``writable`` ones (the slot's working directory, if it lives there).

    Each kept directory is opened (``O_PATH``) before the tmpfs hides it and bound back from that descriptor into
    parents recreated traversable (mode 755): a Python installation under ``/tmp/pytest-of-root`` (mode 700) or
    ``/root`` is reachable while nothing else there is visible.
    """
    inside = [p for p in _outermost([*keep, *writable]) if _is_within(p, private) and p != private]
    handles = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in inside]
    mount("tmpfs", private, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path, handle in handles:
        os.makedirs(path, mode=0o755, exist_ok=True)
        mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC, None)
        if path not in writable:
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, None)
        os.close(handle)


def _expose_python(needed: list[str]) -> None:
    """Make the interpreter's directories readable to the unprivileged uid where a parent others cannot traverse
    stands on the way (``/root/.pyenv``: ``/root`` is mode 700).

    Inside the job's private mount namespace that parent is covered by an empty tmpfs into which only the needed
    directories are bind-mounted back, read-only: everything else there (``~/.cache`` with the private answers
    included) stays invisible.
    """
    for _ in range(8):
        blocked = sorted({found[0] for found in map(_blocked_parent, needed) if found})
        if not blocked:
            return
        for parent in _outermost(blocked):
            _private_mount(parent, needed, options="size=1m,mode=0755")


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
                if os.path.isdir(private):
                    _private_mount(private, slot.python_paths, [slot.work_dir])
            _expose_python(slot.python_paths)
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
