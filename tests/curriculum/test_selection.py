"""Selection (gate, modes per group) and the buffer update (overwrite, inheritance, prefixes)."""

import dataclasses

import numpy as np
import pytest

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.config import get_config, settings_from_config
from exit_jax.curriculum.selection import MODE_CODE, select_batch, update_buffer
from exit_jax.types import MODES, Instance
from tests.curriculum.helpers import (
    iterate_instance,
    multi_turn_episode,
    settings,
    single_turn_episodes,
)

BASE = [f"base-{i}" for i in range(10)]


def filled_buffer(count, capacity=64, mode="improve"):
    buffer = TaskBuffer(capacity, seed=0)
    buffer.insert([iterate_instance(str(i), mode=mode) for i in range(count)], np.full(count, 0.1))
    return buffer


def test_gate_needs_min_buffer_size():
    config = settings(replay_prob=1.0, min_buffer_size=8)
    below = select_batch(filled_buffer(7), BASE, 32, config, np.random.default_rng(0))
    assert not below.from_buffer.any() and (below.entry_ids == -1).all()
    at = select_batch(filled_buffer(8), BASE, 32, config, np.random.default_rng(0))
    assert at.from_buffer.all() and (at.entry_ids >= 0).all()


@pytest.mark.parametrize("replay_prob", [0.0, 0.3, 1.0])
def test_gate_replay_probability(replay_prob):
    config = settings(replay_prob=replay_prob, min_buffer_size=1)
    count = 4000
    selection = select_batch(filled_buffer(4), BASE, count, config, np.random.default_rng(1))
    sigma = np.sqrt(replay_prob * (1 - replay_prob) / count)
    assert abs(selection.from_buffer.mean() - replay_prob) <= 5 * sigma
    base = ~selection.from_buffer
    assert all(inst.task_id in BASE and inst.mode == "base"
               for inst, is_base in zip(selection.instances, base, strict=True) if is_base)


def test_grpo_rung_never_replays_and_improve_never_diverges():
    grpo = dataclasses.replace(settings_from_config(get_config("grpo")), min_buffer_size=1)
    selection = select_batch(filled_buffer(4), BASE, 64, grpo, np.random.default_rng(2))
    assert not selection.from_buffer.any()
    improve = settings(method="improve", divergence=False, replay_prob=1.0, min_buffer_size=1)
    selection = select_batch(filled_buffer(4), BASE, 64, improve, np.random.default_rng(2))
    assert (selection.modes == MODE_CODE["improve"]).all()


def test_divergence_is_per_group_at_rate_p_div():
    config = settings(replay_prob=0.5, min_buffer_size=1, divergence_prob=0.3)
    count, group_size = 4000, 8
    selection = select_batch(filled_buffer(4), BASE, count, config, np.random.default_rng(3))
    replayed = selection.from_buffer
    diverge = selection.modes == MODE_CODE["diverge"]
    assert not diverge[~replayed].any()  # base tasks have nothing to diverge from
    rate = diverge[replayed].mean()
    assert abs(rate - 0.3) <= 5 * np.sqrt(0.3 * 0.7 / replayed.sum())
    assert set(selection.mode_names()) == {"base", "improve", "diverge"}
    per_rollout = selection.group_modes(group_size).reshape(count, group_size)
    assert (per_rollout == per_rollout[:, :1]).all()  # one prompt per group
    assert [inst.mode for inst in selection.instances] == [MODES[code] for code in selection.modes]


def test_debug_entries_and_entries_without_previous_response():
    config = settings(replay_prob=1.0, min_buffer_size=1, divergence_prob=1.0)
    debug = select_batch(filled_buffer(3, mode="debug"), BASE, 16, config, np.random.default_rng(4))
    assert (debug.modes == MODE_CODE["debug"]).all()
    buffer = TaskBuffer(8)
    buffer.insert([Instance(task_id="prefix", turn=2)], np.array([0.2]))
    plain = select_batch(buffer, BASE, 16, config, np.random.default_rng(4))
    assert (plain.modes == MODE_CODE["base"]).all() and plain.instances[0].task_id == "prefix"


def test_parent_overwrite_and_children_inherit_parent_score():
    config = settings(replay_prob=1.0, min_buffer_size=1, insert_played=False)
    buffer = filled_buffer(1, capacity=64)
    (parent_id,) = buffer.ids()
    selection = select_batch(buffer, BASE, 1, config, buffer.rng)
    assert selection.entry_ids[0] == parent_id
    quality = np.array([[1.0, 0.0, 1.0, 1.0]])
    update_buffer(buffer, selection, quality, single_turn_episodes(selection.instances, quality),
                  config, buffer.rng)
    expected = np.var([1.0, 0.0, 1.0, 1.0])  # population variance, independently
    assert buffer.score_of(parent_id) == pytest.approx(expected)
    children = [e for e in buffer.ids() if e != parent_id]
    assert len(children) == 4
    for child_id in children:
        child = buffer.get(child_id)
        assert buffer.score_of(child_id) == pytest.approx(expected)
        assert child.parent_id == parent_id and child.iterate == 2 and child.mode == "improve"


def test_always_solved_parent_gives_children_score_zero():
    config = settings(replay_prob=1.0, min_buffer_size=1)
    buffer = filled_buffer(1)
    selection = select_batch(buffer, BASE, 1, config, buffer.rng)
    quality = np.ones((1, 4))
    update_buffer(buffer, selection, quality, single_turn_episodes(selection.instances, quality),
                  config, buffer.rng)
    assert np.all(buffer.scores[: buffer.size] == 0.0) and buffer.size == 5


def test_played_base_task_enters_with_fresh_score_and_is_parent_of_children():
    config = settings(replay_prob=0.0)
    buffer = TaskBuffer(64)
    selection = select_batch(buffer, ["only"], 1, config, buffer.rng)
    quality = np.array([[0.0, 1.0]])
    update_buffer(buffer, selection, quality, single_turn_episodes(selection.instances, quality),
                  config, buffer.rng)
    base = [e for e in buffer.ids() if buffer.get(e).previous_response is None]
    assert len(base) == 1 and buffer.score_of(base[0]) == 0.25
    children = [e for e in buffer.ids() if e != base[0]]
    assert len(children) == 2 and all(buffer.get(c).parent_id == base[0] for c in children)


def test_every_per_turn_partial_history_is_inserted():
    config = settings(replay_prob=0.0, insert_played=False)
    buffer = TaskBuffer(64)
    selection = select_batch(buffer, ["tool-task"], 1, config, buffer.rng)
    episodes = [[multi_turn_episode(selection.instances[0], 3, tag=f"r{g}", quality=float(g % 2))
                 for g in range(2)]]
    update_buffer(buffer, selection, np.array([[0.0, 1.0]]), episodes, config, buffer.rng)
    held = [buffer.get(e) for e in buffer.ids()]
    assert len(held) == 6
    assert sorted(inst.turn for inst in held) == [0, 0, 1, 1, 2, 2]
    assert all(len(inst.history) == 2 * inst.turn for inst in held)
    assert np.all(buffer.scores[: buffer.size] == 0.25)


def test_curriculum_rung_inserts_continuations_without_previous_response():
    config = settings(method="curriculum", expansion=False, divergence=False, replay_prob=0.0)
    buffer = TaskBuffer(64)
    selection = select_batch(buffer, ["tool-task"], 1, config, buffer.rng)
    episodes = [[multi_turn_episode(selection.instances[0], 3, tag=f"r{g}", quality=float(g))
                 for g in range(2)]]
    update_buffer(buffer, selection, np.array([[0.0, 1.0]]), episodes, config, buffer.rng)
    held = [buffer.get(e) for e in buffer.ids()]
    assert all(inst.previous_response is None and inst.mode == "base" for inst in held)
    # turn 0 prefix == the played task (merged); turns 1, 2 differ between the two rollouts.
    assert len(held) == 5 and sorted(inst.turn for inst in held) == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("policy,expected_count", [("all", 4), ("best", 1), ("sample", 2)])
def test_insert_children_policy(policy, expected_count):
    config = settings(replay_prob=0.0, insert_played=False, insert_children=policy,
                      children_sample_size=2)
    buffer = TaskBuffer(64)
    selection = select_batch(buffer, ["t"], 1, config, buffer.rng)
    quality = np.array([[0.2, 0.9, 0.1, 0.5]])
    episodes = single_turn_episodes(selection.instances, quality)
    update_buffer(buffer, selection, quality, episodes, config, buffer.rng)
    assert buffer.size == expected_count
    if policy == "best":
        best_child = episodes[0][1].children[0]
        assert buffer.get(buffer.ids()[0]).previous_response == best_child.previous_response


def test_grpo_update_leaves_buffer_untouched():
    config = settings_from_config(get_config("grpo"))
    buffer = TaskBuffer(8)
    selection = select_batch(buffer, ["t"], 2, config, buffer.rng)
    quality = np.array([[0.0, 1.0], [1.0, 1.0]])
    report = update_buffer(buffer, selection, quality,
                           single_turn_episodes(selection.instances, quality), config, buffer.rng)
    assert buffer.size == 0 and report["group_score_mean"] == pytest.approx(0.125)


def test_mismatched_shapes_raise_clear_error():
    config = settings(replay_prob=0.0)
    buffer = TaskBuffer(8)
    selection = select_batch(buffer, ["t"], 2, config, buffer.rng)
    with pytest.raises(ValueError, match="do not match"):
        update_buffer(buffer, selection, np.zeros((3, 2)), [[], [], []], config, buffer.rng)
