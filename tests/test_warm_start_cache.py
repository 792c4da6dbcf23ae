"""The warm-start cache: a second run with the same key loads the first one's parameters and logged NLLs bitwise and
trains nothing; anything the warm start depends on (here the seed) changes the key."""

import jax
import numpy as np

from exit_jax.trainer import Trainer
from experiments.mle import get_config


def _trainer(tmp_path, name, seed=0):
    config = get_config(f"smoke,seed={seed}")
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

    other_seed = _trainer(tmp_path, "c", seed=1)
    batches = _count_training_batches(other_seed)
    _warm_start(other_seed)
    assert len(batches) == other_seed.config.warm_start.steps
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    for trainer in (first, second, other_seed):
        trainer.domain.close()
