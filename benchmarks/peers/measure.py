"""Timing and resident-memory helpers shared by every benchmark side (standard library + psutil).

Memory is measured three ways:
  * `ru_maxrss`: the kernel's peak resident set of the whole process (getrusage), in bytes;
  * a psutil sampler thread that reads RSS every 10 ms and keeps the peak of the whole run;
  * per phase, the kernel's VmHWM after resetting it (writing 5 to /proc/self/clear_refs) at the
    phase's start, so each phase's peak counts what it holds plus what it allocates.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def ru_maxrss_bytes() -> int:
    """Peak resident set of this process so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _status_bytes(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_high_water_mark() -> bool:
    """Resets the kernel's VmHWM for this process; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples this process's RSS every `interval_s` in a daemon thread; `.peak` in bytes."""

    def __init__(self, interval_s: float = 0.01):
        import psutil

        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


class PhasePeaks:
    """Collects the VmHWM peak of named phases: `with peaks.phase("rollout"): ...`."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        exact = reset_high_water_mark()
        try:
            yield
        finally:
            # Without a reset, VmHWM is the process's peak so far: still an upper bound.
            self.peaks[name] = _status_bytes("VmHWM") if exact else ru_maxrss_bytes()


def peak_rss_record(sampler: RssSampler, phases: PhasePeaks) -> dict[str, object]:
    """The ``peak_rss_bytes`` measurement every side reports: process high-water mark, sampled peak, phase peaks."""
    return {"ru_maxrss": ru_maxrss_bytes(), "sampled_peak": sampler.peak, "phases": phases.peaks}


def time_repetitions(
    run_once: Callable[[], object],
    warmup: int,
    repetitions: int,
    sync: Callable[[object], object] = lambda output: output,
) -> list[float]:
    """Wall-clock seconds of `repetitions` calls of `run_once` after `warmup` discarded calls.

    Args:
        run_once: the work to time; its return value is passed to `sync`.
        warmup: calls run first and not timed (compilation, caches).
        repetitions: timed calls.
        sync: waits for asynchronous work in the output (e.g. jax.block_until_ready).

    Returns:
        Seconds of each timed call.
    """
    for _ in range(warmup):
        sync(run_once())
    seconds = []
    for _ in range(repetitions):
        start = time.perf_counter()
        sync(run_once())
        seconds.append(time.perf_counter() - start)
    return seconds
