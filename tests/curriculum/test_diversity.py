"""The diversity-bonus kernel against a NumPy reference, across meshes, and its guards."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from exit_jax.curriculum.config import get_config, settings_from_config
from exit_jax.curriculum.diversity import (
    apply_diversity_bonus,
    diversity_bonus,
    diversity_coefficients,
    embed_texts,
    pool_hidden_states,
)


def reference_coefficients(embeddings, group_size, normalization="range", eps=1e-5):
    """Plain NumPy, one group at a time, float64."""
    out = []
    for group in np.asarray(embeddings, dtype=np.float64).reshape(-1, group_size,
                                                                   embeddings.shape[-1]):
        distances = np.array([np.linalg.norm(e - group.mean(axis=0)) for e in group])
        spread = distances.max() - distances.min()
        largest_norm = max(np.linalg.norm(e) for e in group)
        if normalization == "mean":
            scale = distances.mean()
            if scale <= eps * largest_norm or scale == 0:
                out += [1.0] * group_size
            else:
                out += list(distances / scale)
            continue
        if spread <= eps * largest_norm:
            out += [1.0] * group_size
        elif normalization == "range":
            out += list(distances / spread)
        else:
            out += list((distances - distances.min()) / spread)
    return np.array(out)


def data_mesh(count):
    return jax.make_mesh((count,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:count])


@pytest.mark.parametrize("normalization", ["range", "minmax", "mean"])
def test_matches_numpy_reference(normalization):
    embeddings = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    got = diversity_coefficients(embeddings, 8, mesh=data_mesh(8), normalization=normalization)
    expected = reference_coefficients(embeddings, 8, normalization)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=1e-6)


def test_identical_on_one_and_eight_devices_and_without_mesh():
    embeddings = np.random.default_rng(1).normal(size=(64, 256)).astype(np.float32)
    one = np.asarray(diversity_coefficients(embeddings, 8, mesh=data_mesh(1)))
    eight = diversity_coefficients(embeddings, 8, mesh=data_mesh(8))
    assert len(eight.sharding.device_set) == 8
    np.testing.assert_array_equal(one, np.asarray(eight))
    np.testing.assert_array_equal(one, np.asarray(diversity_coefficients(embeddings, 8)))


def test_shards_over_data_and_fsdp_axes():
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3)
    embeddings = np.random.default_rng(2).normal(size=(32, 16)).astype(np.float32)
    got = diversity_coefficients(embeddings, 4, mesh=mesh)
    np.testing.assert_allclose(np.asarray(got), reference_coefficients(embeddings, 4), rtol=2e-5)


def test_groups_that_do_not_split_over_shards_fall_back_to_replicated():
    # 4 groups of 8 on 8 shards.
    embeddings = np.random.default_rng(3).normal(size=(32, 16)).astype(np.float32)
    got = diversity_coefficients(embeddings, 8, mesh=data_mesh(8))
    np.testing.assert_allclose(np.asarray(got), reference_coefficients(embeddings, 8), rtol=2e-5)


@pytest.mark.parametrize("normalization", ["range", "minmax", "mean"])
def test_identical_embeddings_and_groups_of_one_are_finite_ones(normalization):
    identical = np.tile(np.arange(16, dtype=np.float32), (16, 1))
    got = np.asarray(diversity_coefficients(identical, 8, mesh=data_mesh(2),
                                            normalization=normalization))
    np.testing.assert_array_equal(got, np.ones(16))
    singles = np.random.default_rng(4).normal(size=(8, 16)).astype(np.float32)
    got = np.asarray(diversity_coefficients(singles, 1, mesh=data_mesh(8),
                                            normalization=normalization))
    np.testing.assert_array_equal(got, np.ones(8))
    zeros = np.zeros((8, 4), dtype=np.float32)
    got = np.asarray(diversity_coefficients(zeros, 4, normalization=normalization))
    np.testing.assert_array_equal(got, np.ones(8))


@pytest.mark.parametrize("normalization", ["range", "minmax"])
def test_exact_ties_get_no_bonus(normalization):
    """Four copies of one response and four of another: every member is at the same distance from the centroid,
    so the spread is exactly 0 and the guard must give d = 1. When the two embeddings are close compared with their
    norm, float32 rounding leaves a spread of up to ~1e-4 of the largest distance; a guard relative to that distance let
    such ties through with d ~ 1e5 (session 6's math sweep)."""
    rng = np.random.default_rng(8)
    groups = []
    for norm_scale in (0.1, 1.0, 30.0):
        for closeness in (1.0, 1e-2, 1e-3):
            for _ in range(8):
                a = rng.normal(size=256) * norm_scale
                b = a + rng.normal(size=256) * norm_scale * closeness
                groups.append(np.stack([a, b] * 4)[rng.permutation(8)])
    embeddings = np.concatenate(groups).astype(np.float32)
    expected = reference_coefficients(embeddings, 8, normalization)
    np.testing.assert_array_equal(expected, np.ones(len(embeddings)))  # float64: the spread is exactly 0
    got = np.asarray(diversity_coefficients(embeddings, 8, mesh=data_mesh(8), normalization=normalization))
    np.testing.assert_array_equal(got, expected)


def test_two_member_group_hand_computed():
    # Two points: both at distance 1 from the centroid, spread 0 -> guard gives 1; three collinear
    # points: centroid 1, distances [1, 0, 1]... use [0, 1, 3]: centroid 4/3, distances [4/3, 1/3,
    # 5/3], spread 4/3.
    embeddings = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
    got = np.asarray(diversity_coefficients(embeddings, 3))
    np.testing.assert_allclose(got, [1.0, 0.25, 1.25], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(diversity_coefficients(np.array([[0.0], [2.0]]), 2)),
                                  [1.0, 1.0])


def test_apply_bonus_multiplies_advantages():
    advantages = jnp.array([1.0, -2.0, 0.5])
    coefficients = jnp.array([2.0, 0.5, 1.0])
    np.testing.assert_allclose(apply_diversity_bonus(advantages, coefficients), [2.0, -1.0, 0.5])
    per_token = apply_diversity_bonus(jnp.ones((3, 4)), coefficients)
    np.testing.assert_allclose(per_token, np.repeat(np.asarray(coefficients)[:, None], 4, axis=1))


def test_bonus_follows_the_ladder():
    embeddings = np.random.default_rng(6).normal(size=(16, 8)).astype(np.float32)
    advantages = jnp.asarray(np.random.default_rng(7).normal(size=16).astype(np.float32))
    off = diversity_bonus(advantages, embeddings, 8, settings_from_config(get_config("diverge")))
    np.testing.assert_array_equal(off, advantages)
    on = diversity_bonus(advantages, embeddings, 8, settings_from_config(get_config("exit")),
                         mesh=data_mesh(2))
    expected = np.asarray(advantages) * reference_coefficients(embeddings, 8)
    np.testing.assert_allclose(np.asarray(on), expected, rtol=2e-5, atol=1e-6)


def test_external_embedder_and_pooled_hidden_states():
    def embedder(texts):
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float64)

    got = embed_texts(embedder, ["a", "bb", "aaa", "b"])
    np.testing.assert_array_equal(got, [[1, 1], [2, 0], [3, 3], [1, 0]])
    with pytest.raises(ValueError, match="expected"):
        embed_texts(lambda texts: np.zeros((1, 2)), ["a", "b"])
    hidden = np.random.default_rng(5).normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.array([[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    pooled = np.asarray(pool_hidden_states(jnp.asarray(hidden), jnp.asarray(mask)))
    np.testing.assert_allclose(pooled[0], hidden[0, 1:3].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(pooled[1], np.zeros(3))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="whole number of groups"):
        diversity_coefficients(np.zeros((10, 4)), 4)
    with pytest.raises(ValueError, match="unknown"):
        diversity_coefficients(np.zeros((8, 4)), 4, normalization="l1")
