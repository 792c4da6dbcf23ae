"""The warm-start cache: a second run with the same key loads the first one's parameters and logged NLLs bitwise and
trains nothing, also under another RL seed (a sweep's seeds share one base policy); anything the warm start depends
on (here the base seed, ``model.seed``) changes the key."""

import jax
import numpy as np

from exit_jax.trainer import Trainer
from experiments.mle import get_config


def _trainer(tmp_path, name, seed=0, model_seed=0):
    config = get_config(f"smoke,seed={seed}")
    config.model.seed = model_seed
    config.warm_start.cache_dir = str(tmp_path / "cache")
    return Trainer(config, tmp_path / name)


def _count_training_batches(trainer) -> list[int]:
    """Records the demonstration batches the warm start trains on (the cache key's own probe draws 16, not these)."""
    batches, original = [], trainer.domain.demonstrations
    size = trainer.config.warm_start.batch_size

    def counted(count, rng):
        if count == size:
            batches.append(count)
        return original(count, rng)

    trainer.domain.demonstrations = counted
    return batches


def _warm_start(trainer):
    logged = []
    trainer.warm_start(lambda step, metrics: logged.append((step, metrics)))
    return logged, [np.asarray(x) for x in jax.tree.leaves(trainer.learner.params)]


def test_cached_warm_start_is_bitwise_equal_and_skips_training(tmp_path):
    first = _trainer(tmp_path, "a")
    initial = [np.asarray(x) for x in jax.tree.leaves(first.learner.params)]
    logged, params = _warm_start(first)
    assert logged and any(not np.array_equal(p, q) for p, q in zip(params, initial, strict=True))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    second = _trainer(tmp_path, "b")
    batches = _count_training_batches(second)
    logged_again, params_again = _warm_start(second)
    assert batches == [], "a cached warm start must not draw training demonstrations"
    assert logged_again == logged
    for got, want in zip(params_again, params, strict=True):
        np.testing.assert_array_equal(got, want)
    assert second.warm_started

    # Another RL seed, the same base seed: the same initial weights, and the cached warm start is loaded.
    rl_seed = _trainer(tmp_path, "c", seed=1)
    for got, want in zip(jax.tree.leaves(rl_seed.learner.params), initial, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)
    batches = _count_training_batches(rl_seed)
    logged_rl, params_rl = _warm_start(rl_seed)
    assert batches == [] and logged_rl == logged
    for got, want in zip(params_rl, params, strict=True):
        np.testing.assert_array_equal(got, want)

    other_base = _trainer(tmp_path, "d", model_seed=1)
    assert any(not np.array_equal(np.asarray(p), q)
               for p, q in zip(jax.tree.leaves(other_base.learner.params), initial, strict=True))
    batches = _count_training_batches(other_base)
    _warm_start(other_base)
    assert len(batches) == other_base.config.warm_start.steps
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    for trainer in (first, second, rl_seed, other_base):
        trainer.domain.close()
