"""An exclusive advisory file lock, for work that several processes on one host may start at once, and the root of
the on-disk caches such processes share (``cache_home``).

Used with the check-lock-recheck idiom: look for the result without the lock (the common, cheap case), and only if it
is missing take the lock, look again (another process may have finished it while this one waited), then build it.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike | None) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``path`` (created, with its directory, if missing) for the block.

    ``None`` takes no lock, for callers where the lock does not apply (e.g. several hosts, whose files an flock
    does not coordinate). The lock is released when the block exits, normally or by an exception, and by the kernel
    if the process dies.
    """
    if path is None:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_home() -> Path:
    """The root of exit_jax's on-disk caches: ``$EXIT_JAX_CACHE``, else ``~/.cache/exit_jax``."""
    return Path(os.environ.get("EXIT_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "exit_jax"))
