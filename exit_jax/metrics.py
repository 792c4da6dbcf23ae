"""Run metrics: ``<workdir>/metrics.jsonl``, TensorBoard event files under ``<workdir>/tb/``, a console progress line.

This module owns what a run writes about its own progress, not what it computes. It never imports JAX: values
arrive as Python or NumPy scalars (or 0-d arrays that ``float()`` accepts) at the loop's seams.

``metrics.jsonl`` holds one JSON object per logged step, ``{"step": 12, "reward": 0.41, ...}``; non-finite values are
written as ``null`` (strict JSON) and read back as NaN. A run resumed from a checkpoint at step ``S`` constructs
``MetricsLogger(workdir, resume_step=S)``: lines for steps after ``S`` (logged by the killed run after its last
checkpoint) are dropped by an atomic rewrite (and appended to ``metrics.dropped.jsonl``, so nothing is lost), the
resumed run continues the file without duplicates, and the TensorBoard writer is opened with ``purge_step=S + 1``
so TensorBoard hides the stale events too. A torn last line (the process was killed mid-write) is dropped in the
same rewrite.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

METRICS_FILE = "metrics.jsonl"
DROPPED_FILE = "metrics.dropped.jsonl"
TENSORBOARD_DIR = "tb"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool | numbers.Real):
        return float(value)
    try:  # NumPy / JAX 0-d arrays and scalars
        return float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metric {key!r} has a non-numeric value {value!r} ({type(value).__name__}); "
                         "log only scalars (convert arrays with float() or .item())") from error


def _parse_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Reads ``path`` into records; returns (records, whether the file needs repairing before appending).

    The last line may be torn (killed mid-write): if it does not parse it is dropped; if it parses but lacks its
    newline it is kept. Either way the file needs a rewrite before anything is appended to it.

    Raises:
      ValueError: a line other than the last one is not a JSON object with an integer ``step``.
    """
    if not path.exists():
        return [], False
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    needs_repair = not text.endswith("\n") and text != ""
    if lines and lines[-1] == "":
        lines.pop()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            needs_repair = True
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or type(record.get("step")) is not int:
                raise ValueError("not an object with an integer 'step'")
        except ValueError as error:
            if number == len(lines):
                needs_repair = True
                continue
            raise ValueError(f"{path}:{number} is not a metrics record ({error}); the file is damaged. Move it "
                             "aside (the run then starts a fresh metrics file) or delete that line.") from error
        records.append({key: (math.nan if value is None and key != "step" else value)
                        for key, value in record.items()})
    return records, needs_repair


def read_metrics(path_or_workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a metrics file (or ``<workdir>/metrics.jsonl``) into a list of dicts, oldest first.

    ``null`` values come back as NaN; a torn last line is skipped; a missing file gives ``[]``.
    """
    path = Path(path_or_workdir)
    if path.is_dir():
        path = path / METRICS_FILE
    return _parse_lines(path)[0]


def _atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _record_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, allow_nan=False, separators=(", ", ": ")) + "\n"


class MetricsLogger:
    """Appends scalars to ``<workdir>/metrics.jsonl`` and TensorBoard event files under ``<workdir>/tb/``.

    Args:
      workdir: the run directory (created if missing).
      resume_step: ``None`` for a fresh run: lines left by an earlier attempt that never checkpointed are dropped.
        ``S`` when resuming from the checkpoint of step ``S``: lines with ``step > S`` are dropped. Dropped lines
        are appended to ``<workdir>/metrics.dropped.jsonl``.
      tensorboard: also write TensorBoard events (tensorboardX).
      enabled: ``False`` makes every method a no-op (processes other than 0 on a multi-host run).
    """

    def __init__(self, workdir: str | os.PathLike, resume_step: int | None = None, *, tensorboard: bool = True,
                 enabled: bool = True):
        self.workdir = Path(workdir)
        self.path = self.workdir / METRICS_FILE
        self.enabled = enabled
        self._writer = None
        self._stream: TextIO | None = None
        if not enabled:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        keep_through = -1 if resume_step is None else int(resume_step)
        records, needs_repair = _parse_lines(self.path)
        kept = [record for record in records if record["step"] <= keep_through]
        dropped = [record for record in records if record["step"] > keep_through]
        if dropped:  # kept aside, never destroyed: a wrong resume_step can be undone by hand
            with open(self.workdir / DROPPED_FILE, "a", encoding="utf-8") as stream:
                stream.writelines(_record_line(_json_safe(record)) for record in dropped)
        if needs_repair or dropped:
            _atomic_write_text(self.path, "".join(_record_line(_json_safe(record)) for record in kept))
        self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported lazily: only runs that log need it

            self._writer = SummaryWriter(logdir=str(self.workdir / TENSORBOARD_DIR), purge_step=keep_through + 1,
                                         flush_secs=30)

    def log(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Writes one record. ``scalars`` maps names (``"reward"``, ``"buffer/size"``) to numbers."""
        if not self.enabled:
            return
        if self._stream is None:
            raise RuntimeError(f"MetricsLogger for {self.workdir} is closed")
        if "step" in scalars:
            raise ValueError("'step' is reserved for the step number; rename that metric")
        values = {str(key): _as_float(str(key), value) for key, value in scalars.items()}
        record = {"step": int(step), **{key: _finite_or_none(value) for key, value in values.items()}}
        self._stream.write(_record_line(record))
        self._stream.flush()
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, global_step=int(step))

    def flush(self) -> None:
        """Pushes buffered records to disk (fsync for the jsonl file)."""
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes and closes both outputs; further ``log`` calls raise."""
        if self._stream is not None:
            self.flush()
            self._stream.close()
            self._stream = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def history(self) -> list[dict[str, Any]]:
        """Every record in ``metrics.jsonl`` so far, oldest first (``null`` read back as NaN)."""
        if self._stream is not None:
            self._stream.flush()
        return read_metrics(self.path)

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in record.items()}


def _clock_text(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _metric_text(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != 0 and (abs(number) >= 1e4 or abs(number) < 1e-3):
        return f"{number:.3g}"
    return f"{number:.4g}"


class Progress:
    """A one-line console progress display on stderr: ``iter 12/100 [###...] 12% 0:00:31 elapsed, ETA 0:03:47 |
    reward 0.412 loss 0.0123``.

    On a TTY the line is redrawn in place; otherwise a plain line is printed every ``every`` iterations (and on the
    last one), so logs stay readable.

    Args:
      total: the iteration count at which the run ends.
      every: print every ``every`` iterations when not a TTY (always redraw on a TTY).
      initial: the iteration a resumed run starts from (the ETA counts only iterations done in this process).
      keys: metric names to show (in this order) when present in ``update``'s metrics; ``None`` shows them all.
      stream: where to write (default ``sys.stderr``).
      clock: seconds since some origin (``time.monotonic``); injectable for tests.
    """

    def __init__(self, total: int, every: int = 1, *, initial: int = 0, keys: Sequence[str] | None = None,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        if total < 0 or every < 1:
            raise ValueError(f"Progress needs total >= 0 and every >= 1, got total={total}, every={every}")
        self.total, self.every, self.initial = int(total), int(every), int(initial)
        self.keys = None if keys is None else list(keys)
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start = clock()
        self._is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0

    def line(self, iteration: int, metrics: Mapping[str, Any] | None = None) -> str:
        """The text shown after ``iteration`` iterations are done."""
        elapsed = self._clock() - self._start
        done_here = iteration - self.initial
        remaining = self.total - iteration
        eta = elapsed / done_here * remaining if done_here > 0 else math.inf
        fraction = iteration / self.total if self.total else 1.0
        filled = int(round(20 * min(max(fraction, 0.0), 1.0)))
        text = (f"iter {iteration}/{self.total} [{'#' * filled}{'.' * (20 - filled)}] {100 * fraction:3.0f}% "
                f"{_clock_text(elapsed)} elapsed, ETA {_clock_text(eta if remaining > 0 else 0.0)}")
        metrics = metrics or {}
        keys = self.keys if self.keys is not None else list(metrics)
        shown = [f"{key} {_metric_text(metrics[key])}" for key in keys if key in metrics]
        return text + (" | " + " ".join(shown) if shown else "")

    def update(self, iteration: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Shows progress after ``iteration`` iterations are done (1-based count, ``total`` at the end)."""
        last = iteration >= self.total
        if self._is_tty:
            text = self.line(iteration, metrics)
            padding = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + padding + ("\n" if last else ""))
        elif last or (iteration - self.initial) % self.every == 0:
            self.stream.write(self.line(iteration, metrics) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends an in-place line with a newline (when the loop stopped before ``total``)."""
        if self._is_tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
