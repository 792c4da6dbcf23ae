"""Advantage estimators against the per-sample NumPy loop in numpy_reference.py."""

import jax.numpy as jnp
import numpy as np
import pytest

from exit_jax.rl import advantages as adv
from tests.rl import numpy_reference as ref


@pytest.mark.parametrize("estimator,scale", [("grpo", "group"), ("grpo", "batch"), ("grpo", "none"),
                                             ("dr_grpo", "none"), ("rloo", "none"), ("rloo", "group")])
@pytest.mark.parametrize("ddof", [0, 1])
def test_estimators_match_reference(estimator, scale, ddof):
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=24).astype(np.float32)
    rewards[8:12] = 0.5  # One zero-variance group among six groups of 4.
    multiplier = rng.uniform(0.5, 2.0, size=24).astype(np.float32)
    got = adv.compute_advantages(jnp.asarray(rewards), 4, estimator=estimator, scale_rewards=scale,
                                 std_ddof=ddof, epsilon=1e-4, multiplier=jnp.asarray(multiplier))
    want = ref.advantages(rewards, 4, estimator, scale, ddof, 1e-4, multiplier)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got)[8:12] == 0.0)


def test_zero_variance_is_exactly_zero_never_nan():
    # 0.1 * 6 is not exact in float32, so r - mean leaves residue that /epsilon would blow up.
    rewards = jnp.array([0.1] * 6 + [0.0] * 6 + [1.0, 0.0, 1.0, 0.0, 1.0, 0.0], jnp.float32)
    for estimator in adv.ADVANTAGE_ESTIMATORS:
        for eps in (0.0, 1e-4):
            out = np.asarray(adv.compute_advantages(rewards, 6, estimator=estimator,
                                                    scale_rewards="none" if estimator == "dr_grpo" else "group",
                                                    epsilon=eps))
            assert np.all(np.isfinite(out))
            assert np.all(out[:12] == 0.0)
            assert np.all(out[12:] != 0.0)


def test_hand_computed_binary_group():
    # Group [1, 0, 0, 0]: mean 0.25, sample std sqrt(0.25) = 0.5 (ddof=1: sum sq = 0.75, /3).
    out = np.asarray(adv.grpo_advantages(jnp.array([1.0, 0.0, 0.0, 0.0]), 4, epsilon=0.0))
    np.testing.assert_allclose(out, [0.75 / 0.5, -0.25 / 0.5, -0.25 / 0.5, -0.25 / 0.5], rtol=1e-6)
    # RLOO: 1 - 0 = 1 and 0 - 1/3.
    out = np.asarray(adv.rloo_advantages(jnp.array([1.0, 0.0, 0.0, 0.0]), 4))
    np.testing.assert_allclose(out, [1.0, -1 / 3, -1 / 3, -1 / 3], rtol=1e-6)


def test_reward_metrics():
    rewards = jnp.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0], jnp.float32)
    m = adv.reward_metrics(rewards, 2)
    np.testing.assert_allclose(float(m["reward"]), 0.5)
    np.testing.assert_allclose(float(m["frac_reward_zero_std"]), 2 / 3)
    np.testing.assert_allclose(float(m["reward_std"]), np.std([1, 0], ddof=1) / 3, rtol=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="divisible by num_generations"):
        adv.compute_advantages(jnp.zeros(7), 4)
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        adv.compute_advantages(jnp.zeros(8), 4, estimator="ppo")
