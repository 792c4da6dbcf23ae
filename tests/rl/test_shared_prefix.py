"""Shared-prefix train steps: each GRPO group's prompt runs once and its G completions attend to its KV cache.

References: the plain full-row forward of the same Decoder (log-probs, entropies and, through its Jacobian, the
gradient of the NumPy objective in tests/rl/numpy_reference.py), and hand-built batches for the prefix detection.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exit_jax.models.config import ModelConfig
from exit_jax.models.decoder import Decoder
from exit_jax.rl import config as config_lib
from exit_jax.rl import train_step as step_lib
from exit_jax.rl.batch import completion_batch, shared_prefix_length
from exit_jax.rl.learner import GRPOLearner
from tests.rl import numpy_reference as ref

TINY = ModelConfig(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                   intermediate_size=64, max_position_embeddings=96)
GROUPS, G, PROMPT, COMPLETION = 3, 4, 20, 9
ROWS = GROUPS * G


def grouped_batch(seed=0, groups=GROUPS):
    """Groups of G rows sharing a left-padded prompt (of different lengths per group), own completions."""
    rng = np.random.default_rng(seed)
    rows = groups * G
    prompt_lengths = np.repeat(rng.integers(3, PROMPT + 1, size=groups), G)
    prompt_mask = np.arange(PROMPT)[None, :] >= (PROMPT - prompt_lengths)[:, None]
    prompt = np.where(prompt_mask, np.repeat(rng.integers(1, 64, size=(groups, PROMPT)), G, axis=0), 0)
    lengths = rng.integers(0, COMPLETION + 1, size=rows)
    lengths[0] = COMPLETION
    completion = rng.integers(1, 64, size=(rows, COMPLETION))
    batch = completion_batch(prompt, prompt_mask, completion, lengths, rng.normal(size=rows).astype(np.float32),
                             truncated=lengths == COMPLETION)
    lp = np.zeros(batch["tokens"].shape, np.float32)
    batch["old_log_probs"] = (lp + rng.normal(0, 0.3, size=lp.shape)).astype(np.float32)
    batch["ref_log_probs"] = (lp + rng.normal(0, 0.3, size=lp.shape)).astype(np.float32)
    return batch


def _config(rows=ROWS, **overrides):
    config = config_lib.get_config()
    config.batch_size, config.num_generations, config.max_completion_length = rows, G, COMPLETION
    config.update(overrides)
    config_lib.validate_config(config)
    return config


def _split(seed=0):
    return nnx.split(Decoder(TINY, rngs=nnx.Rngs(seed)), nnx.Param, ...)


@functools.partial(jax.jit, static_argnames=("graphdef", "loss_start", "prefix_length"))
def _log_probs(graphdef, params, rest, inputs, loss_start=0, prefix_length=0):
    return step_lib.policy_log_probs(graphdef, params, rest, inputs, True, loss_start, prefix_length, G)


@pytest.mark.parametrize("prefix_length,loss_start", [(PROMPT, 0), (PROMPT, PROMPT), (8, PROMPT), (PROMPT, 8),
                                                      (PROMPT - 1, PROMPT - 4)])
def test_shared_prefix_log_probs_equal_the_full_forward(prefix_length, loss_start):
    graphdef, params, rest = _split()
    batch = grouped_batch(1)
    inputs = {k: jnp.asarray(batch[k]) for k in step_lib.MODEL_INPUTS}
    want_lp, want_ent = map(np.asarray, _log_probs(graphdef, params, rest, inputs))
    got_lp, got_ent = map(np.asarray, _log_probs(graphdef, params, rest, inputs, loss_start, prefix_length))
    # Compared where a token and the one before it are real: a padding query attends to nothing real (its row is
    # uniform over whatever the cache holds), so log-probs predicted from padding columns are never trained.
    start = max(loss_start, 1)
    real = np.zeros_like(batch["attention_mask"])
    real[:, 1:] = batch["attention_mask"][:, 1:] & batch["attention_mask"][:, :-1]
    real[:, :start] = False
    assert real[:, PROMPT:].sum() > 40 and real[:, :PROMPT].sum() > (20 if start < PROMPT else -1)
    np.testing.assert_allclose(got_lp[real], want_lp[real], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_ent[real], want_ent[real], rtol=1e-5, atol=1e-5)
    assert not got_lp[:, :start].any()


def test_a_prefix_that_differs_inside_a_group_is_not_equal():
    # The shared path reads each group's first row only: if rows differed, the result would differ (so the equality
    # above is not vacuous), which is why the learner shares only what shared_prefix_length found equal.
    graphdef, params, rest = _split()
    batch = grouped_batch(1)
    batch["tokens"][1, PROMPT - 2] = (batch["tokens"][1, PROMPT - 2] % 63) + 1
    inputs = {k: jnp.asarray(batch[k]) for k in step_lib.MODEL_INPUTS}
    want = np.asarray(_log_probs(graphdef, params, rest, inputs)[0])
    got = np.asarray(_log_probs(graphdef, params, rest, inputs, 0, PROMPT)[0])
    assert np.abs(got[1, PROMPT:] - want[1, PROMPT:]).max() > 1e-3
    np.testing.assert_allclose(got[4:, PROMPT:], want[4:, PROMPT:], rtol=1e-5, atol=1e-5)  # other groups untouched


@functools.partial(jax.jit, static_argnums=0)
def _pull_back(graphdef, params, rest, inputs, cotangent):
    _, vjp = jax.vjp(lambda p: step_lib.policy_log_probs(graphdef, p, rest, inputs)[0], params)
    return vjp(cotangent)[0]


@pytest.mark.parametrize("loss_type,level,beta,micro", [
    ("grpo", "token", 0.0, 1), ("dr_grpo", "token", 0.04, 3), ("dapo", "sequence", 0.0, 3),
    ("bnpo", "token", 0.04, 3)])
def test_shared_prefix_gradient_matches_reference(loss_type, level, beta, micro):
    graphdef, params, rest = _split()
    config = _config(loss_type=loss_type, importance_sampling_level=level, beta=beta, epsilon_high=0.28,
                     micro_batch_size=ROWS // micro, mask_truncated_completions=True)
    batch = grouped_batch(2)
    if not beta:
        del batch["ref_log_probs"]
    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    inputs = {k: device_batch[k] for k in step_lib.MODEL_INPUTS}
    lp = np.asarray(_log_probs(graphdef, params, rest, inputs)[0]).astype(np.float64)
    fn = jax.jit(step_lib.make_loss_and_grad_fn(graphdef, config, micro), static_argnames=("loss_start",
                                                                                           "prefix_length"))
    grads, sums = fn(params, rest, device_batch, loss_start=PROMPT, prefix_length=PROMPT)

    mask = batch["loss_mask"] & ~batch["truncated"][:, None]
    want_loss, dlp = ref.loss_and_grad(lp, batch["old_log_probs"].astype(np.float64), batch["advantages"], mask,
                                       loss_type, 0.2, 0.28, level,
                                       batch.get("ref_log_probs", np.zeros_like(lp)).astype(np.float64), beta,
                                       COMPLETION, micro, block=ROWS // micro)
    np.testing.assert_allclose(float(sums["loss"]), want_loss, rtol=1e-5, atol=1e-6)
    want_grads = _pull_back(graphdef, params, rest, inputs, jnp.asarray(dlp, jnp.float32))
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)


def test_micro_batches_of_whole_groups_are_required():
    graphdef, params, rest = _split()
    config = _config(micro_batch_size=2)  # 6 micro-batches of 2 rows: a group of 4 does not fit
    fn = step_lib.make_loss_and_grad_fn(graphdef, config, 6)
    batch = {k: jnp.asarray(v) for k, v in grouped_batch(3).items()}
    with pytest.raises(ValueError, match="whole groups"):
        fn(params, rest, batch, 0, PROMPT)
    assert step_lib.shared_prefix_block(12, 6, 1, 4) == 0
    assert step_lib.shared_prefix_block(12, 3, 1, 4) == 4
    assert step_lib.shared_prefix_block(16, 2, 2, 4) == 4 and step_lib.shared_prefix_block(16, 2, 4, 4) == 0


@pytest.mark.parametrize("block", [1, 2, 4])
def test_split_and_merge_microbatches_are_inverse_and_deal_blocks(block):
    x = jnp.arange(24 * 3).reshape(24, 3)
    split = step_lib.split_microbatches(x, 3, block)
    np.testing.assert_array_equal(np.asarray(step_lib.merge_microbatches(split, block)), np.asarray(x))
    rows = np.arange(24)
    for m in range(3):  # micro-batch m holds, in order, the rows whose block index is m modulo 3
        np.testing.assert_array_equal(np.asarray(split[m, :, 0]) // 3, rows[(rows // block) % 3 == m])


def test_shared_prefix_length_finds_the_common_prompt_columns():
    batch = grouped_batch(4)
    assert shared_prefix_length(batch, G, multiple=1) == PROMPT  # cut at the first trained column
    assert shared_prefix_length(batch, G, multiple=8) == 16
    assert shared_prefix_length(batch, G, multiple=32) == 0  # shorter than one bucket
    assert shared_prefix_length(batch, 5, multiple=1) == 0  # 12 rows are not groups of 5
    changed = {k: np.array(v) for k, v in batch.items()}
    changed["tokens"][G + 2, 11] = (changed["tokens"][G + 2, 11] % 63) + 1  # even if that column is padding
    assert shared_prefix_length(changed, G, multiple=1) == 11
    changed = {k: np.array(v) for k, v in batch.items()}
    changed["positions"][2, 15] += 1
    assert shared_prefix_length(changed, G, multiple=1) == 15
    ungrouped = {k: (np.roll(v, 1, axis=0) if np.ndim(v) == 2 else v) for k, v in batch.items()}
    lead = int(np.flatnonzero(batch["attention_mask"].any(axis=0))[0])  # columns that are padding in every row
    assert shared_prefix_length(ungrouped, G, multiple=1) == lead < PROMPT


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_learner_shares_the_prompt_and_matches_the_unshared_update(loss_type):
    """The learner finds the prefix on a host batch (both updates see the same trimmed batch; only the prefix is
    shared or not). bnpo's micro-batches change membership with sharing (contiguous blocks), so it is checked with
    one micro-batch, where both layouts agree."""
    batch = grouped_batch(5)
    del batch["ref_log_probs"], batch["old_log_probs"]
    batch = {k: (np.pad(v, ((0, 0), (12, 0))) if np.ndim(v) == 2 else v) for k, v in batch.items()}  # prompt 32
    micro = 3 if loss_type == "grpo" else 1
    results = []
    for share in (True, False):
        config = _config(loss_type=loss_type, learning_rate=1e-2, micro_batch_size=ROWS // micro,
                         share_prompt_prefix=share)
        learner = GRPOLearner(Decoder(TINY, rngs=nnx.Rngs(0)), config)
        calls = []
        step = learner._train_step
        learner._train_step = lambda *a, _step=step, _calls=calls: _calls.append(a[-1]) or _step(*a)
        metrics = [learner.update(batch) for _ in range(2)]
        results.append((learner, metrics, calls))
    (shared, shared_metrics, shared_calls), (plain, plain_metrics, plain_calls) = results
    assert shared_calls == [32, 32] and plain_calls == [0, 0]
    for got, want in zip(shared_metrics, plain_metrics, strict=True):
        for key in ("loss", "entropy", "grad_norm", "num_tokens"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(shared.params), jax.tree.leaves(plain.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_sharded_learner_with_a_shared_prefix_matches_one_device_without():
    """fsdp 2 x tensor 4 mesh: two data shards, each holding one block of whole groups per micro-batch."""
    from exit_jax.sharding import make_mesh

    batch = grouped_batch(6, groups=4)
    del batch["ref_log_probs"], batch["old_log_probs"]
    batch = {k: (np.pad(v, ((0, 0), (12, 0))) if np.ndim(v) == 2 else v) for k, v in batch.items()}
    learners = []
    for mesh, share in ((make_mesh(1, 2, 4), True), (None, False)):
        # adam_eps = 1 makes the update nearly linear in the gradient, so the parameter change compares the
        # gradients (with the default eps, Adam's m / sqrt(v) turns float noise in a near-zero gradient into O(lr)).
        config = _config(rows=16, loss_type="dapo", learning_rate=1.0, adam_eps=1.0, max_grad_norm=None,
                         micro_batch_size=8, share_prompt_prefix=share)
        learner = GRPOLearner(Decoder(TINY, rngs=nnx.Rngs(0)), config, mesh=mesh)
        assert learner._data_shards == (2 if mesh else 1)
        initial = [np.asarray(x) for x in jax.tree.leaves(learner.params)]
        metrics = [learner.update(batch) for _ in range(2)]
        deltas = [np.asarray(x) - x0 for x, x0 in zip(jax.tree.leaves(learner.params), initial, strict=True)]
        learners.append((deltas, metrics))
    (sharded, sharded_metrics), (single, single_metrics) = learners
    for key in ("loss", "grad_norm"):
        np.testing.assert_allclose(sharded_metrics[-1][key], single_metrics[-1][key], rtol=1e-4, atol=1e-6)
    scale = max(np.abs(d).max() for d in single)
    assert scale > 1e-4
    for a, b in zip(sharded, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)
