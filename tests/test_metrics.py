"""metrics.jsonl + TensorBoard events written by MetricsLogger, resume truncation, torn lines, the progress line."""

import io
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboardX.proto import event_pb2

from exit_jax.metrics import MetricsLogger, Progress, read_metrics


def read_event_scalars(tb_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], list[tuple[int, int]]]:
    """Parses TFRecord event files by hand: [u64 length][u32 crc][Event proto][u32 crc] per record.

    Returns {tag: [(step, value), ...]} over all files, and (step, status) for every SessionLog event.
    """
    scalars: dict[str, list[tuple[int, float]]] = {}
    session_logs = []
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            payload = data[offset + 12: offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            if event.HasField("session_log"):
                session_logs.append((event.step, event.session_log.status))
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars, session_logs


def test_jsonl_and_tensorboard_hold_every_scalar(tmp_path):
    logged = {0: {"reward": 0.25, "loss": -1.5, "buffer/size": 3}, 1: {"reward": 0.5, "loss": float("nan")},
              2: {"reward": float("inf"), "kl": 1e-3}}
    with MetricsLogger(tmp_path) as logger:
        for step, scalars in logged.items():
            logger.log(step, scalars)
        history = logger.history()

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 0, "reward": 0.25, "loss": -1.5, "buffer/size": 3.0},
        {"step": 1, "reward": 0.5, "loss": None},
        {"step": 2, "reward": None, "kl": 1e-3}]
    assert "NaN" not in "".join(lines) and "Infinity" not in "".join(lines)
    assert math.isnan(history[1]["loss"]) and math.isnan(history[2]["reward"])
    assert history[0] == {"step": 0, "reward": 0.25, "loss": -1.5, "buffer/size": 3.0}

    scalars, _ = read_event_scalars(tmp_path / "tb")
    assert scalars["reward"][:2] == [(0, 0.25), (1, 0.5)] and math.isinf(scalars["reward"][2][1])
    assert scalars["loss"][0] == (0, -1.5) and math.isnan(scalars["loss"][1][1])
    assert scalars["buffer/size"] == [(0, 3.0)]
    assert scalars["kl"][0][0] == 2 and scalars["kl"][0][1] == pytest.approx(1e-3, rel=1e-6)  # float32 in the proto


def test_resume_drops_steps_after_the_checkpoint_and_purges_tensorboard(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        for step in range(6):
            logger.log(step, {"reward": step / 10})
    resumed = MetricsLogger(tmp_path, resume_step=3)
    assert [record["step"] for record in resumed.history()] == [0, 1, 2, 3]
    for step in range(4, 8):
        resumed.log(step, {"reward": 1.0 + step})
    resumed.close()
    history = read_metrics(tmp_path)
    assert [record["step"] for record in history] == list(range(8))
    assert [record["reward"] for record in history] == [0.0, 0.1, 0.2, 0.3, 5.0, 6.0, 7.0, 8.0]
    assert read_metrics(tmp_path / "metrics.dropped.jsonl") == [{"step": 4, "reward": 0.4}, {"step": 5, "reward": 0.5}]
    _, session_logs = read_event_scalars(tmp_path / "tb")
    start = event_pb2.SessionLog.START
    assert (4, start) in session_logs  # TensorBoard discards older events at step >= 4


def test_fresh_run_discards_lines_of_an_attempt_that_never_checkpointed(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"reward": 1.0})
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(0, {"reward": 2.0})
    assert read_metrics(tmp_path) == [{"step": 0, "reward": 2.0}]
    assert read_metrics(tmp_path / "metrics.dropped.jsonl") == [{"step": 0, "reward": 1.0}]


def test_a_torn_last_line_is_dropped_and_appending_continues_cleanly(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "reward": 1.0}\n{"step": 1, "reward": 2.0}\n{"step": 2, "rew')
    assert [record["step"] for record in read_metrics(path)] == [0, 1]
    with MetricsLogger(tmp_path, resume_step=5, tensorboard=False) as logger:
        logger.log(2, {"reward": 3.0})
    assert path.read_text() == '{"step": 0, "reward": 1.0}\n{"step": 1, "reward": 2.0}\n{"step": 2, "reward": 3.0}\n'


def test_a_complete_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "reward": 1.0}')
    with MetricsLogger(tmp_path, resume_step=0, tensorboard=False) as logger:
        logger.log(1, {"reward": 2.0})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 0, "reward": 1.0}, {"step": 1, "reward": 2.0}]


def test_kill_9_mid_run_then_resume(tmp_path):
    """A child process logs, is SIGKILLed after step 4's line; a resume from step 2 continues without duplicates."""
    script = (f"import os, signal\nfrom exit_jax.metrics import MetricsLogger\n"
              f"logger = MetricsLogger({str(tmp_path)!r}, tensorboard=False)\n"
              "for step in range(5):\n    logger.log(step, {'x': step})\n"
              "logger._stream.write('{\"step\": 5, \"x')\nlogger._stream.flush()\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1], check=False)
    assert result.returncode == -9
    with MetricsLogger(tmp_path, resume_step=2, tensorboard=False) as logger:
        logger.log(3, {"x": 30})
    assert [(record["step"], record["x"]) for record in read_metrics(tmp_path)] == [(0, 0), (1, 1), (2, 2), (3, 30)]


def test_damaged_middle_line_is_a_clear_error_and_the_file_is_untouched(tmp_path):
    path = tmp_path / "metrics.jsonl"
    content = '{"step": 0}\nnot json\n{"step": 1}\n'
    path.write_text(content)
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 .*damaged"):
        MetricsLogger(tmp_path, resume_step=1, tensorboard=False)
    assert path.read_text() == content


def test_bad_values_are_rejected_with_the_key(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(ValueError, match="'name'"):
            logger.log(0, {"name": "abc"})
        with pytest.raises(ValueError, match="reserved"):
            logger.log(0, {"step": 1.0})


def test_disabled_logger_writes_nothing(tmp_path):
    logger = MetricsLogger(tmp_path / "w", enabled=False)
    logger.log(0, {"x": 1.0})
    logger.close()
    assert not (tmp_path / "w").exists()


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_plain_lines_with_eta_and_chosen_metrics():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(10, every=2, initial=2, keys=["reward", "loss"], stream=stream, clock=clock)
    clock.now += 30.0
    progress.update(3, {"reward": 0.5, "loss": 0.01234, "kl": 9.0})  # not printed: every=2 from initial=2
    clock.now += 30.0
    progress.update(4, {"reward": 0.5, "loss": 0.01234, "kl": 9.0})
    clock.now += 120.0
    progress.update(10, {"reward": 0.75})
    lines = stream.getvalue().splitlines()
    # 2 iterations in 60 s -> 30 s each, 6 left -> ETA 180 s.
    assert lines[0] == ("iter 4/10 [########............]  40% 0:01:00 elapsed, ETA 0:03:00 | reward 0.5 loss 0.01234")
    assert lines[1].startswith("iter 10/10 [####################] 100% 0:03:00 elapsed, ETA 0:00:00 | reward 0.75")
    assert len(lines) == 2


def test_progress_redraws_in_place_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    progress = Progress(2, stream=stream, clock=FakeClock())
    progress.update(1, {"reward": 1.0})
    progress.update(2)
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
