"""The multi-host hand-off of a selection, and the per-iteration diagnostics."""

import itertools

import numpy as np
import pytest

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.diagnostics import iteration_diagnostics, mean_pairwise_distances
from exit_jax.curriculum.multihost import (
    broadcast_json,
    broadcast_selection,
    decode_selection,
    encode_selection,
)
from exit_jax.curriculum.selection import select_batch
from exit_jax.types import Instance, Message
from tests.curriculum.helpers import iterate_instance, settings


def replay_selection():
    buffer = TaskBuffer(16, seed=3)
    entries = [iterate_instance("a", turn=2), iterate_instance("b", iterate=3),
               Instance(task_id="c", history=(Message("user", "hi"),), turn=1,
                        extra=(("state", [1, 2]),))]
    buffer.insert(entries, np.array([0.1, 0.2, 0.25]))
    config = settings(replay_prob=0.5, min_buffer_size=1, divergence_prob=0.5)
    return buffer, select_batch(buffer, ["base-x", "base-y"], 12, config, buffer.rng)


def assert_same_selection(a, b):
    assert a.instances == b.instances and a.step == b.step
    for field in ("from_buffer", "modes", "entry_ids"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).dtype == getattr(b, field).dtype


def test_encode_decode_roundtrip_and_broadcast_path():
    _, selection = replay_selection()
    assert selection.from_buffer.any() and (~selection.from_buffer).any()
    assert_same_selection(decode_selection(encode_selection(selection)), selection)
    assert broadcast_selection(selection) is selection  # one process: no-op
    # The real broadcast path, forced on one process.
    assert_same_selection(broadcast_selection(selection, force=True), selection)
    assert broadcast_json({"a": [1, 2.5]}, force=True) == {"a": [1, 2.5]}


def test_mean_pairwise_distances_against_explicit_pairs():
    embeddings = np.random.default_rng(0).normal(size=(6, 5))
    pairs = list(itertools.combinations(range(6), 2))
    norms = [np.linalg.norm(e) for e in embeddings]
    cosine = np.mean([1 - embeddings[i] @ embeddings[j] / (norms[i] * norms[j]) for i, j in pairs])
    l2 = np.mean([np.linalg.norm(embeddings[i] - embeddings[j]) for i, j in pairs])
    got = mean_pairwise_distances(embeddings)
    assert got == pytest.approx((cosine, l2), rel=1e-9)
    assert mean_pairwise_distances(embeddings[:1]) == (0.0, 0.0)


def test_iteration_diagnostics():
    buffer, selection = replay_selection()
    diagnostics = iteration_diagnostics(buffer, selection, np.eye(12))
    replayed = selection.from_buffer
    names = selection.mode_names()
    assert diagnostics["buffer/size"] == 3
    assert diagnostics["buffer/score_mean"] == pytest.approx((0.1 + 0.2 + 0.25) / 3)
    assert diagnostics["buffer/score_max"] == 0.25
    assert diagnostics["batch/replay_fraction"] == replayed.mean()
    assert diagnostics["batch/divergence_fraction"] == np.mean([n == "diverge" for n in names])
    assert diagnostics["batch/mean_iterate"] == np.mean([i.iterate for i in selection.instances])
    assert diagnostics["batch/mean_start_turn_replayed"] == np.mean(
        [i.turn for i, r in zip(selection.instances, replayed, strict=True) if r])
    distinct = {i.content_key() for i in selection.instances}
    assert diagnostics["curriculum/distinct_trained"] == len(distinct)
    assert diagnostics["batch/pairwise_cosine"] == pytest.approx(1.0)
    assert diagnostics["batch/pairwise_l2"] == pytest.approx(np.sqrt(2))
