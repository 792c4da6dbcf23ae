"""A short simulated run of every rung of the ladder: the components each rung switches on show up."""

import numpy as np
import pytest

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.config import METHODS, get_config, settings_from_config
from exit_jax.curriculum.diagnostics import iteration_diagnostics
from exit_jax.curriculum.selection import select_batch, update_buffer
from tests.curriculum.helpers import single_turn_episodes

BASE = [f"problem-{i}" for i in range(12)]


def run(method, iterations=12, prompts=8, group=4):
    config = get_config(method)
    config.buffer_size, config.min_buffer_size = 32, 8
    settings = settings_from_config(config)
    buffer = TaskBuffer.from_settings(settings)
    outcome = np.random.default_rng(5)
    seen, logs = [], []
    for step in range(iterations):
        selection = select_batch(buffer, BASE, prompts, settings, buffer.rng)
        quality = outcome.integers(0, 2, size=(prompts, group)).astype(float)
        episodes = single_turn_episodes(selection.instances, quality, tag=str(step))
        update_buffer(buffer, selection, quality, episodes, settings, buffer.rng)
        logs.append(iteration_diagnostics(buffer, selection))
        seen.append(selection)
        assert len(buffer) <= settings.buffer_size
    return settings, buffer, seen, logs


@pytest.mark.parametrize("method", METHODS)
def test_rung_components(method):
    settings, buffer, seen, logs = run(method)
    modes = {name for selection in seen for name in selection.mode_names()}
    replays = sum(int(selection.from_buffer.sum()) for selection in seen)
    if method == "grpo":
        assert replays == 0 and len(buffer) == 0 and modes == {"base"}
    else:
        assert replays > 0
    if method == "curriculum":
        assert modes == {"base"}
        assert all(buffer.get(e).previous_response is None for e in buffer.ids())
    if method in ("improve", "diverge", "exit"):
        assert "improve" in modes
        assert max(log["batch/mean_iterate"] for log in logs) > 0
    assert ("diverge" in modes) == (method in ("diverge", "exit"))
    assert settings.diversity_bonus == (method == "exit")
    for log in logs:
        finite = {k: v for k, v in log.items() if k != "batch/mean_start_turn_replayed"}
        assert all(np.isfinite(v) for v in finite.values())
        assert 0.0 <= log["buffer/score_max"] <= 0.25
    assert logs[-1]["curriculum/distinct_trained"] >= logs[0]["curriculum/distinct_trained"]

