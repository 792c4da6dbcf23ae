"""K-step evaluation metrics against hand-computed cases."""

import numpy as np
import pytest

from exit_jax.domains.math.metrics import accuracy_at_each_k, avg_at_n, delta_k, net_corrections

# 2 problems x 2 samples x (K+1 = 3) steps, worked by hand below.
CORRECT = np.array(
    [
        [[0, 1, 1], [1, 1, 0]],  # problem 0: sample 0 fixed at k=1; sample 1 broken at k=2
        [[0, 0, 1], [0, 0, 0]],  # problem 1: sample 0 fixed at k=2
    ],
    dtype=bool,
)


def test_accuracy_at_each_k_by_hand():
    # k=0: 1 of 4 correct; k=1: 2 of 4; k=2: 2 of 4.
    np.testing.assert_allclose(accuracy_at_each_k(CORRECT), [0.25, 0.5, 0.5])


def test_avg_at_n_uses_first_n_samples_per_problem():
    # n=1, k=0: samples 0 only -> problem 0: 0, problem 1: 0 -> 0.0; k=1 -> (1 + 0) / 2.
    assert avg_at_n(CORRECT, n=1, k=0) == 0.0
    assert avg_at_n(CORRECT, n=1, k=1) == 0.5
    assert avg_at_n(CORRECT, n=2, k=0) == 0.25
    with pytest.raises(ValueError, match="n must be"):
        avg_at_n(CORRECT, n=3)


def test_delta_k_in_percentage_points():
    assert delta_k(CORRECT) == pytest.approx(25.0)
    assert delta_k(CORRECT, k=1) == pytest.approx(25.0)
    assert delta_k(CORRECT, k=0) == 0.0


def test_net_corrections_by_hand():
    # k=1: fixed {p0s0} = 1, broken {} = 0 -> 1. k=2: fixed {p0s0, p1s0} = 2, broken {p0s1} = 1 ->
    # 1.
    np.testing.assert_array_equal(net_corrections(CORRECT), [0, 1, 1])


def test_problems_weigh_equally_and_shapes_are_checked():
    correct = np.zeros((3, 4, 2), dtype=bool)
    correct[0, :, 1] = True  # one problem always fixed at k=1
    np.testing.assert_allclose(accuracy_at_each_k(correct), [0.0, 1 / 3])
    np.testing.assert_array_equal(net_corrections(correct), [0, 4])
    with pytest.raises(ValueError, match="shape"):
        accuracy_at_each_k(np.zeros((3, 4)))
