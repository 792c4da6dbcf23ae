"""Loss values and gradients against the explicit per-token loop in numpy_reference.py."""

import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from exit_jax.rl import losses
from tests.rl import numpy_reference as ref

LOSS_TYPES = ["grpo", "dr_grpo", "dapo", "bnpo"]


def _random_batch(seed, batch=6, seq=9):
    rng = np.random.default_rng(seed)
    lp = rng.normal(-2.0, 0.7, size=(batch, seq)).astype(np.float32)
    old = (lp + rng.normal(0.0, 0.25, size=(batch, seq))).astype(np.float32)
    ref_lp = (lp + rng.normal(0.0, 0.3, size=(batch, seq))).astype(np.float32)
    adv = rng.normal(size=batch).astype(np.float32)
    adv[1] = 0.0  # A zero-advantage row.
    mask = rng.random((batch, seq)) < 0.7
    mask[:, 0] = False
    mask[2] = False  # A fully masked row (e.g. a truncated completion).
    return lp, old, ref_lp, adv, mask


@pytest.mark.parametrize("loss_type,level,beta,eps_high,num_micro",
                         [(lt, lv, b, eh, m) for lt, lv, b, eh, m in itertools.product(
                             LOSS_TYPES, ["token", "sequence"], [0.0, 0.04], [None, 0.28], [1])]
                         + [("bnpo", "token", 0.04, 0.28, 2), ("bnpo", "sequence", 0.0, None, 3)])
def test_loss_and_grad_match_reference(loss_type, level, beta, eps_high, num_micro):
    lp, old, ref_lp, adv, mask = _random_batch(zlib.crc32(f"{loss_type}{level}{beta}{num_micro}".encode()))
    options = dict(epsilon=0.2, epsilon_high=eps_high, importance_sampling_level=level,
                   ref_log_probs=jnp.asarray(ref_lp), beta=beta)

    def loss_fn(log_probs):
        weights = losses.aggregation_weights(jnp.asarray(mask), loss_type, max_completion_length=12,
                                             num_microbatches=num_micro)
        return losses.aggregated_loss(log_probs, jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask),
                                      weights, **options)[0]

    loss, grad = jax.value_and_grad(loss_fn)(jnp.asarray(lp))
    want_loss, want_grad = ref.loss_and_grad(lp.astype(np.float64), old.astype(np.float64), adv, mask, loss_type,
                                             0.2, eps_high, level, ref_lp.astype(np.float64), beta, 12, num_micro)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(grad)[~mask] == 0.0)
    assert np.all(np.asarray(grad)[1] == 0.0) or beta > 0  # Zero advantage: only the KL term moves it.


def test_log_probs_entropy_and_logit_gradient_match_reference():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, size=(4, 7, 11)).astype(np.float32)
    tokens = rng.integers(0, 11, size=(4, 7)).astype(np.int32)
    lp, ent = losses.token_log_probs_and_entropy(jnp.asarray(logits), jnp.asarray(tokens))
    want_lp, want_ent = ref.log_softmax_gather(logits, tokens)
    np.testing.assert_allclose(np.asarray(lp), want_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ent), want_ent, rtol=1e-5, atol=1e-6)

    # Gradient w.r.t. the logits: chain the reference dL/dlp through d lp / d logits = onehot - softmax.
    _, old, _, adv, mask = _random_batch(4, batch=4, seq=7)
    old = (want_lp + rng.normal(0, 0.2, size=want_lp.shape)).astype(np.float32)

    def loss_fn(lg):
        log_probs = losses.token_log_probs(lg, jnp.asarray(tokens))
        return losses.grpo_loss(log_probs, jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask),
                                loss_type="dapo", epsilon=0.2, epsilon_high=0.28)

    grad = np.asarray(jax.grad(loss_fn)(jnp.asarray(logits)))
    _, dlp = ref.loss_and_grad(want_lp, old.astype(np.float64), adv, mask, "dapo", 0.2, 0.28)
    want = np.zeros(logits.shape)
    for i in range(4):
        for j in range(1, 7):
            row = logits[i, j - 1].astype(np.float64)
            softmax = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
            onehot = np.eye(11)[tokens[i, j]]
            want[i, j - 1] += dlp[i, j] * (onehot - softmax)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("advantage", [1.5, -1.5])
def test_clipping_at_and_across_both_boundaries(advantage):
    eps, eps_high = 0.2, 0.28
    # Ratios: far below, just inside and exactly on each boundary, and beyond. old = 0 so ratio = exp(lp).
    ratios = np.array([0.5, 1 - eps - 1e-3, 1 - eps, 1 - eps + 1e-3, 1.0, 1 + eps_high - 1e-3, 1 + eps_high,
                       1 + eps_high + 1e-3, 2.0], np.float64)
    lp = jnp.asarray(np.log(ratios).astype(np.float32))[None, :]
    realised = np.exp(np.asarray(lp, np.float64))[0]  # Ratios as float32 can represent them.
    mask = jnp.ones_like(lp, bool)

    def per_token(log_probs):
        loss, diag = losses.per_token_objective(log_probs, jnp.zeros_like(log_probs), jnp.array([advantage]),
                                                mask, epsilon=eps, epsilon_high=eps_high)
        return loss, diag

    (loss, diag), vjp = jax.vjp(per_token, lp)
    grad = np.asarray(vjp((jnp.ones_like(loss), jax.tree.map(jnp.zeros_like, diag)))[0])[0]
    loss = np.asarray(loss)[0]
    ratio32 = np.asarray(diag["ratio"])[0]
    for k, r in enumerate(ratio32):
        low_clipped = advantage < 0 and r < np.float32(1 - eps)
        high_clipped = advantage > 0 and r > np.float32(1 + eps_high)
        if low_clipped or high_clipped:
            bound = (1 - eps) if low_clipped else (1 + eps_high)
            np.testing.assert_allclose(loss[k], -bound * advantage, rtol=1e-6)
            assert grad[k] == 0.0, (k, r)
        else:
            np.testing.assert_allclose(loss[k], -realised[k] * advantage, rtol=1e-6)
            np.testing.assert_allclose(grad[k], -realised[k] * advantage, rtol=1e-6)
        assert diag["is_low_clipped"][0, k] == float(low_clipped)
        assert diag["is_high_clipped"][0, k] == float(high_clipped)
    # Positive advantage: ratios past 1 + eps_high clipped (indices 7, 8); below 1 - eps *not* clipped (pessimism).
    # Negative advantage: ratios below 1 - eps clipped (0, 1); above 1 + eps_high not clipped.
    clipped = np.asarray(diag["is_region_clipped"])[0].astype(bool)
    expected = [7, 8] if advantage > 0 else [0, 1]
    assert sorted(np.flatnonzero(clipped).tolist()) == expected


def test_zero_variance_group_contributes_no_gradient():
    from exit_jax.rl.advantages import grpo_advantages
    rewards = jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    adv = grpo_advantages(rewards, 4)
    lp, old, _, _, mask = _random_batch(7, batch=8)
    for loss_type in LOSS_TYPES:
        grad = jax.grad(lambda x, lt=loss_type: losses.grpo_loss(
            x, jnp.asarray(old), adv, jnp.asarray(mask), loss_type=lt, max_completion_length=9,
            epsilon=0.2))(jnp.asarray(lp))
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad))
        assert np.all(grad[:4] == 0.0)
        assert np.any(grad[4:] != 0.0)


def test_masked_garbage_is_harmless():
    lp, old, ref_lp, adv, mask = _random_batch(9)
    garbage_old = np.where(mask, old, -1e30).astype(np.float32)  # Would overflow exp() if not masked.
    garbage_ref = np.where(mask, ref_lp, 1e30).astype(np.float32)
    kwargs = dict(loss_type="dapo", epsilon=0.2, beta=0.1)
    clean = jax.grad(lambda x: losses.grpo_loss(x, jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask),
                                                ref_log_probs=jnp.asarray(ref_lp), **kwargs))(jnp.asarray(lp))
    dirty = jax.grad(lambda x: losses.grpo_loss(x, jnp.asarray(garbage_old), jnp.asarray(adv), jnp.asarray(mask),
                                                ref_log_probs=jnp.asarray(garbage_ref), **kwargs))(jnp.asarray(lp))
    np.testing.assert_array_equal(np.asarray(clean), np.asarray(dirty))
