"""Save -> restore -> continue gives exactly the samples of an uninterrupted run."""

import numpy as np
import orbax.checkpoint as ocp
import pytest

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.selection import select_batch, update_buffer
from tests.curriculum.helpers import settings, single_turn_episodes

BASE = [f"base-{i}" for i in range(6)]
CONFIG = settings(buffer_size=24, min_buffer_size=4, replay_prob=0.6, divergence_prob=0.4,
                  insert_children="sample", children_sample_size=2, staleness_coef=0.2)


def iteration(buffer, index):
    """One select -> fake rollouts -> update round; returns what was selected."""
    selection = select_batch(buffer, BASE, 4, CONFIG, buffer.rng)
    quality = np.random.default_rng(1000 + index).integers(0, 2, size=(4, 4)).astype(float)
    episodes = single_turn_episodes(selection.instances, quality, tag=str(index))
    update_buffer(buffer, selection, quality, episodes, CONFIG, buffer.rng)
    return ([inst.to_json() for inst in selection.instances], selection.entry_ids.tolist(),
            selection.modes.tolist())


def save_and_restore(buffer, path, backend):
    """Round-trip a buffer's state through np.savez or an Orbax PyTree checkpoint."""
    if backend == "npz":
        np.savez(path / "buffer.npz", **buffer.state_dict())
        with np.load(path / "buffer.npz", allow_pickle=False) as saved:
            return TaskBuffer.from_state_dict(dict(saved))
    checkpointer = ocp.PyTreeCheckpointer()
    checkpointer.save(path / "orbax", buffer.state_dict())
    return TaskBuffer.from_state_dict(checkpointer.restore(path / "orbax"))


@pytest.mark.parametrize("backend", ["npz", "orbax"])
def test_save_restore_continue_matches_uninterrupted(tmp_path, backend):
    uninterrupted = TaskBuffer(CONFIG.buffer_size, seed=7)
    expected = [iteration(uninterrupted, i) for i in range(16)]

    first_half = TaskBuffer(CONFIG.buffer_size, seed=7)
    for i in range(8):
        assert iteration(first_half, i) == expected[i]
    restored = save_and_restore(first_half, tmp_path, backend)
    del first_half
    assert [iteration(restored, i) for i in range(8, 16)] == expected[8:]
    assert sum(1 for *_, modes in expected for m in modes if m) > 0  # the run really replayed
    final = restored.state_dict()
    reference = uninterrupted.state_dict()
    assert final.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(final[name], reference[name])


def test_empty_buffer_round_trips_through_orbax(tmp_path):
    buffer = TaskBuffer(4, seed=11)
    restored = save_and_restore(buffer, tmp_path, "orbax")
    assert len(restored) == 0 and restored.rng.random() == buffer.rng.random()


def test_state_rejects_mismatched_arrays():
    buffer = TaskBuffer(4)
    state = buffer.state_dict()
    state["scores"] = np.zeros(3)
    try:
        TaskBuffer.from_state_dict(state)
    except ValueError as error:
        assert "scores" in str(error)
    else:
        raise AssertionError("a corrupt state must raise")
