"""TaskBuffer rules: admission, eviction, dedupe, overwrite, replay distribution, invariants."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.scores import learnability_scores
from exit_jax.types import Instance
from tests.curriculum.helpers import SequentialReferenceBuffer, iterate_instance, settings


def named(names):
    return [iterate_instance(str(n)) for n in names]


def held_scores(buffer):
    return {buffer.instances[s].task_id: float(buffer.scores[s]) for s in range(buffer.size)}


def test_fills_then_newcomer_enters_only_if_at_least_the_minimum():
    buffer = TaskBuffer(capacity=4)
    ids = buffer.insert(named("abcd"), np.array([0.1, 0.2, 0.05, 0.2]))
    assert (ids >= 0).all() and len(buffer) == 4
    # Below the minimum (0.05): rejected, nothing changes.
    assert buffer.insert(named("e"), np.array([0.04]))[0] == -1
    assert held_scores(buffer) == {"task-a": 0.1, "task-b": 0.2, "task-c": 0.05, "task-d": 0.2}
    # Equal to the minimum: enters and replaces it.
    assert buffer.insert(named("f"), np.array([0.05]))[0] >= 0
    assert set(held_scores(buffer)) == {"task-a", "task-b", "task-d", "task-f"}
    # Above: replaces the current minimum (f, 0.05).
    buffer.insert(named("g"), np.array([0.15]))
    assert held_scores(buffer) == {"task-a": 0.1, "task-b": 0.2, "task-d": 0.2, "task-g": 0.15}
    assert buffer.counters["evicted"] == 2 and buffer.counters["rejected"] == 1


def test_ties_evict_the_oldest_entry():
    buffer = TaskBuffer(capacity=3)
    buffer.insert(named("abc"), np.zeros(3))
    buffer.insert(named("d"), np.zeros(1))
    assert set(held_scores(buffer)) == {"task-b", "task-c", "task-d"}


@pytest.mark.parametrize("capacity", [1, 5, 17])
def test_batch_admission_equals_sequential_reference(capacity):
    rng = np.random.default_rng(capacity)
    buffer, reference = TaskBuffer(capacity), SequentialReferenceBuffer(capacity)
    for _ in range(30):
        count = int(rng.integers(1, 12))
        names = rng.integers(0, 40, size=count)  # repeats: in-batch and against held entries
        scores = rng.choice([0.0, 0.1, 0.2, 0.25], size=count)
        buffer.insert(named(names), scores)
        reference.insert_batch([(f"task-{n}", s) for n, s in zip(names, scores, strict=True)])
        assert held_scores(buffer) == reference.contents()


def test_duplicates_merge_max_or_overwrite():
    buffer = TaskBuffer(capacity=8)
    first = buffer.insert(named("a"), np.array([0.1]))[0]
    again = buffer.insert([iterate_instance("a", mode="debug")], np.array([0.2]))[0]
    assert again == first and len(buffer) == 1 and buffer.score_of(first) == 0.2
    buffer.insert(named("a"), np.array([0.05]))  # "max": a lower repeat does not lower the score
    assert buffer.score_of(first) == 0.2
    buffer.insert(named("a"), np.array([0.05]), on_duplicate="overwrite")
    assert buffer.score_of(first) == 0.05
    ids = buffer.insert(named("bb"), np.array([0.1, 0.2]))  # repeat inside one batch
    assert ids[0] == ids[1] and len(buffer) == 2 and buffer.score_of(ids[0]) == 0.2
    assert buffer.get(first).mode == "improve"  # the held payload is kept


def test_update_scores_overwrites_and_ignores_evicted_ids():
    buffer = TaskBuffer(capacity=2)
    ids = buffer.insert(named("ab"), np.array([0.1, 0.2]))
    found = buffer.update_scores(np.array([ids[0], ids[0], ids[1]]), np.array([0.0, 0.1, 0.24]))
    assert found.all()
    assert buffer.score_of(ids[0]) == pytest.approx(0.05)  # drawn twice: mean of the fresh scores
    assert buffer.score_of(ids[1]) == 0.24
    buffer.insert(named("c"), np.array([0.2]))  # evicts a (0.05)
    found = buffer.update_scores(np.array([ids[0]]), np.array([0.25]))
    assert not found.any() and buffer.get(ids[0]) is None


def test_softmax_replay_distribution_matches_formula_empirically():
    buffer = TaskBuffer(capacity=5)
    scores = np.array([0.0, 0.05, 0.1, 0.2, 0.25])
    ids = buffer.insert(named("abcde"), scores)
    config = settings(kappa=10.0)
    expected = np.exp(10.0 * scores) / np.exp(10.0 * scores).sum()
    draws = 200_000
    _, sampled = buffer.sample(draws, config, np.random.default_rng(0))
    frequency = np.array([(sampled == i).mean() for i in ids])
    sigma = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(frequency - expected) < 5 * sigma)


def test_rank_and_staleness_distribution_matches_formula():
    buffer = TaskBuffer(capacity=4)
    buffer.insert(named("abcd"), np.array([0.2, 0.0, 0.1, 0.25]))
    buffer.step = 10
    buffer.last_sampled[:4] = [10, 2, 8, 6]
    config = settings(prioritization="rank", temperature=0.5, staleness_coef=0.3)
    ranks = np.array([2.0, 4.0, 3.0, 1.0])
    rank_weights = (1 / ranks) ** (1 / 0.5)
    staleness = np.array([0.0, 8.0, 2.0, 4.0])
    expected = 0.7 * rank_weights / rank_weights.sum() + 0.3 * staleness / staleness.sum()
    np.testing.assert_allclose(buffer.replay_probs(config), expected, rtol=1e-12)


def test_sample_marks_staleness_and_counts():
    buffer = TaskBuffer(capacity=3)
    buffer.insert(named("abc"), np.array([0.25, 0.0, 0.0]))
    buffer.step = 5
    slots, _ = buffer.sample(4, settings(kappa=1000.0), np.random.default_rng(1))
    assert (slots == 0).all() and buffer.last_sampled[0] == 5 and buffer.times_sampled[0] == 4


def test_bad_scores_are_sanitised_not_crashing():
    buffer = TaskBuffer(capacity=3)
    ids = buffer.insert(named("ab"), np.array([np.nan, np.inf]))
    assert np.all(buffer.scores[:2] == 0.0) and (ids >= 0).all()
    with pytest.raises(ValueError, match="instances but"):
        buffer.insert(named("c"), np.array([0.1, 0.2]))


operations = st.lists(
    st.tuples(
        st.lists(st.integers(0, 30), min_size=1, max_size=8),  # instance names of a batch
        st.lists(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8), min_size=8, max_size=8),
        st.integers(0, 6),  # number of replays sampled after the insert
    ),
    min_size=1, max_size=12,
)


@hyp_settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 10), ops=operations, seed=st.integers(0, 2**16))
def test_invariants_size_score_range_and_no_evicted_samples(capacity, ops, seed):
    buffer, rng, config = TaskBuffer(capacity), np.random.default_rng(seed), settings()
    evicted: set[int] = set()
    for names, rewards, num_samples in ops:
        group_rewards = np.array([r[: min(len(x) for x in rewards)] for r in rewards])[: len(names)]
        scores = learnability_scores(group_rewards)
        before = set(buffer.ids().tolist())
        buffer.insert([Instance(task_id=f"t{n}") for n in names], scores)
        evicted |= before - set(buffer.ids().tolist())
        assert len(buffer) <= capacity
        assert np.all((buffer.scores[: buffer.size] >= 0) & (buffer.scores[: buffer.size] <= 0.25))
        if num_samples:
            _, sampled = buffer.sample(num_samples, config, rng)
            assert set(sampled.tolist()) <= set(buffer.ids().tolist())
            assert not set(sampled.tolist()) & evicted
            fresh = learnability_scores(group_rewards[:1].repeat(num_samples, 0))
            buffer.update_scores(sampled, fresh)
