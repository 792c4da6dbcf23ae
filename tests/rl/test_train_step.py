"""The micro-batched, sharded train step on the real Decoder against the NumPy objective and against itself.

The NumPy reference in the full-model test excludes truncated rows and a non-assistant hole in the loss mask, so
those masks are checked there too.
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
from exit_jax.rl.batch import completion_batch
from exit_jax.rl.learner import GRPOLearner
from tests.rl import numpy_reference as ref

TINY = ModelConfig(vocab_size=64, hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2,
                   intermediate_size=64, max_position_embeddings=64)
BATCH, PROMPT, COMPLETION = 8, 5, 6


def _batch(seed=0, old_noise=0.3, with_old=True):
    rng = np.random.default_rng(seed)
    prompt_lengths = rng.integers(1, PROMPT + 1, size=BATCH)
    prompt_mask = np.arange(PROMPT)[None, :] >= (PROMPT - prompt_lengths)[:, None]
    prompt = np.where(prompt_mask, rng.integers(1, 64, size=(BATCH, PROMPT)), 0)
    lengths = rng.integers(0, COMPLETION + 1, size=BATCH)
    lengths[0] = COMPLETION
    completion = rng.integers(1, 64, size=(BATCH, COMPLETION))
    adv = rng.normal(size=BATCH).astype(np.float32)
    batch = completion_batch(prompt, prompt_mask, completion, lengths, adv,
                             truncated=lengths == COMPLETION)
    batch["loss_mask"][3, PROMPT + 1] = False  # A hole, as a tool-output token in a multi-turn history.
    return batch, rng


def _config(**overrides):
    config = config_lib.get_config()
    config.batch_size, config.num_generations, config.max_completion_length = BATCH, 4, COMPLETION
    config.update(overrides)
    config_lib.validate_config(config)
    return config


def _split(seed=0):
    return nnx.split(Decoder(TINY, rngs=nnx.Rngs(seed)), nnx.Param, ...)


@functools.partial(jax.jit, static_argnums=0)
def _log_probs(graphdef, params, rest, inputs):
    return step_lib.policy_log_probs(graphdef, params, rest, inputs)[0]


@functools.partial(jax.jit, static_argnums=0)
def _pull_back(graphdef, params, rest, inputs, cotangent):
    """J^T cotangent, J = d (per-token log-probs) / d params."""
    _, vjp = jax.vjp(lambda p: _log_probs(graphdef, p, rest, inputs), params)
    return vjp(cotangent)[0]


def _with_logprobs(graphdef, params, rest, batch, rng, beta):
    inputs = {k: jnp.asarray(batch[k]) for k in step_lib.MODEL_INPUTS}
    lp = np.asarray(_log_probs(graphdef, params, rest, inputs))
    batch = dict(batch)
    batch["old_log_probs"] = (lp + rng.normal(0, 0.3, size=lp.shape)).astype(np.float32)
    if beta:
        batch["ref_log_probs"] = (lp + rng.normal(0, 0.3, size=lp.shape)).astype(np.float32)
    return batch, lp


@pytest.mark.parametrize("loss_type,level,beta,micro", [
    ("grpo", "token", 0.0, 2), ("dr_grpo", "token", 0.04, 2), ("dapo", "sequence", 0.0, 4),
    ("bnpo", "token", 0.04, 2)])
def test_full_model_gradient_matches_reference(loss_type, level, beta, micro):
    graphdef, params, rest = _split()
    config = _config(loss_type=loss_type, importance_sampling_level=level, beta=beta, epsilon_high=0.28,
                     micro_batch_size=BATCH // micro, mask_truncated_completions=True)
    batch, rng = _batch(1)
    batch, lp = _with_logprobs(graphdef, params, rest, batch, rng, beta)
    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    grads, sums = jax.jit(step_lib.make_loss_and_grad_fn(graphdef, config, micro))(params, rest, device_batch)

    mask = batch["loss_mask"] & ~batch["truncated"][:, None]
    want_loss, dlp = ref.loss_and_grad(lp.astype(np.float64), batch["old_log_probs"].astype(np.float64),
                                       batch["advantages"], mask, loss_type, 0.2, 0.28, level,
                                       batch.get("ref_log_probs", np.zeros_like(lp)).astype(np.float64), beta,
                                       COMPLETION, micro)
    np.testing.assert_allclose(float(sums["loss"]), want_loss, rtol=1e-5, atol=1e-6)
    # Chain rule: d loss / d params = J^T dlp, with J the Jacobian of the model's per-token log-probs.
    inputs = {k: device_batch[k] for k in step_lib.MODEL_INPUTS}
    want_grads = _pull_back(graphdef, params, rest, inputs, jnp.asarray(dlp, jnp.float32))
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_microbatched_gradient_equals_full_batch():
    # Every loss type is also checked micro-batched against the full-batch NumPy objective above; this is the
    # direct comparison for dapo, the mode whose normaliser (global active tokens) spans micro-batches.
    graphdef, params, rest = _split()
    batch, rng = _batch(2)
    batch, _ = _with_logprobs(graphdef, params, rest, batch, rng, beta=0.1)
    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    results = []
    for micro in (1, 4):
        config = _config(loss_type="dapo", beta=0.1, micro_batch_size=BATCH // micro)
        results.append(jax.jit(step_lib.make_loss_and_grad_fn(graphdef, config, micro))(params, rest, device_batch))
    (full_grads, full_sums), (micro_grads, micro_sums) = results
    np.testing.assert_allclose(float(micro_sums["loss"]), float(full_sums["loss"]), rtol=1e-5, atol=1e-7)
    for got, want in zip(jax.tree.leaves(micro_grads), jax.tree.leaves(full_grads), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)


def _run_learner(mesh, batch, config, check_reference=False):
    learner = GRPOLearner(Decoder(TINY, rngs=nnx.Rngs(0)), config, mesh=mesh)
    initial = [np.asarray(x) for x in jax.tree.leaves(learner.params)]
    metrics = [learner.update(batch)]
    if check_reference:  # M = 2: untouched after the first iteration.
        for got, want in zip(jax.tree.leaves(learner.ref_params), initial, strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)
    metrics.append(learner.update(batch))
    if check_reference:  # theta_ref <- alpha theta + (1 - alpha) theta_ref at the second.
        current = [np.asarray(x) for x in jax.tree.leaves(learner.params)]
        for got, theta, old in zip(jax.tree.leaves(learner.ref_params), current, initial, strict=True):
            np.testing.assert_allclose(np.asarray(got), 0.25 * theta + 0.75 * old, rtol=1e-6, atol=1e-7)
    return learner, metrics


def test_one_device_and_2x4_mesh_give_the_same_parameters_and_reference_mixes():
    from exit_jax.sharding import make_mesh
    config = _config(loss_type="dapo", beta=0.05, num_iterations=2, micro_batch_size=4, learning_rate=1e-2,
                     ref_update_interval=2, ref_update_alpha=0.25, max_grad_norm=0.5)
    batch, _ = _batch(3)
    single, single_metrics = _run_learner(None, batch, config, check_reference=True)
    for shape in [(1, 2, 4)]:  # fsdp 2 x tensor 4: both parameter-sharding kinds at once.
        mesh = make_mesh(*shape)
        sharded, sharded_metrics = _run_learner(mesh, batch, config)
        for tree in (sharded.params, sharded.opt_state, sharded.ref_params):  # Adam moments shard like params.
            assert any(len(leaf.sharding.device_set) == 8 and not leaf.sharding.is_fully_replicated
                       for leaf in jax.tree.leaves(tree))
        for got, want in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
        for got, want in zip(jax.tree.leaves(sharded.ref_params), jax.tree.leaves(single.ref_params), strict=True):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
        for key in ("loss", "kl", "grad_norm", "clip_ratio/region_mean"):
            np.testing.assert_allclose(sharded_metrics[-1][key], single_metrics[-1][key], rtol=1e-4, atol=1e-6)
    assert single_metrics[-1]["kl"] > 0 and single_metrics[-1]["grad_norm"] > 0


def _pad_columns(batch, left, right):
    """The same batch with ``left`` / ``right`` extra columns that are padding in every row."""
    out = {}
    for key, value in batch.items():
        if np.ndim(value) == 2:
            out[key] = np.pad(value, ((0, 0), (left, right)))
        else:
            out[key] = value
    return out


def test_trim_padding_drops_only_all_padding_columns_in_buckets():
    from exit_jax.rl.batch import trim_padding

    batch, _ = _batch(4)
    padded = _pad_columns(batch, 21, 18)
    trimmed, loss_start = trim_padding(padded, multiple=8)
    # 21 leading pad columns (+ any of the original's) -> 16 dropped; 18 trailing -> 16 dropped.
    lead = int(np.flatnonzero(padded["attention_mask"].any(axis=0))[0])
    assert lead >= 21
    keep = slice((lead // 8) * 8, padded["tokens"].shape[1] - 16)
    for key in ("tokens", "positions", "attention_mask", "loss_mask"):
        np.testing.assert_array_equal(trimmed[key], padded[key][:, keep])
    np.testing.assert_array_equal(trimmed["advantages"], batch["advantages"])
    first_loss = int(np.flatnonzero(trimmed["loss_mask"].any(axis=0))[0])
    assert 1 <= loss_start <= first_loss and loss_start % 8 == 0 and first_loss - loss_start < 8
    assert trimmed["attention_mask"].sum() == batch["attention_mask"].sum()


@pytest.mark.parametrize("loss_start", [PROMPT - 1, PROMPT])
def test_loss_start_skips_prompt_logits_without_changing_loss_or_gradient(loss_start):
    graphdef, params, rest = _split()
    config = _config(loss_type="grpo", beta=0.05)
    batch, rng = _batch(5)
    batch, _ = _with_logprobs(graphdef, params, rest, batch, rng, beta=0.05)
    assert not batch["loss_mask"][:, :PROMPT].any()  # the layout loss_start relies on
    device_batch = {k: jnp.asarray(v) for k, v in batch.items()}
    fn = jax.jit(step_lib.make_loss_and_grad_fn(graphdef, config, 2), static_argnames=("loss_start",))
    full_grads, full_sums = fn(params, rest, device_batch)
    grads, sums = fn(params, rest, device_batch, loss_start=loss_start)
    np.testing.assert_allclose(float(sums["loss"]), float(full_sums["loss"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(sums["entropy_sum"]), float(full_sums["entropy_sum"]), rtol=1e-6)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(full_grads), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    inputs = {k: device_batch[k] for k in step_lib.MODEL_INPUTS}
    full = np.asarray(step_lib.policy_log_probs(graphdef, params, rest, inputs)[0])
    cut = np.asarray(step_lib.policy_log_probs(graphdef, params, rest, inputs, loss_start=loss_start)[0])
    np.testing.assert_allclose(cut[:, loss_start:], full[:, loss_start:], rtol=1e-5, atol=1e-6)
    assert not cut[:, :loss_start].any()


def test_learner_update_on_a_padded_host_batch_equals_the_untrimmed_update():
    config = _config(loss_type="dapo", beta=0.05, learning_rate=1e-2)
    batch = _pad_columns(_batch(6)[0], 37, 20)
    trimmed = GRPOLearner(Decoder(TINY, rngs=nnx.Rngs(0)), config)
    untrimmed = GRPOLearner(Decoder(TINY, rngs=nnx.Rngs(0)), config)
    initial = nnx.state(Decoder(TINY, rngs=nnx.Rngs(0)), nnx.Param)
    got = trimmed.update(batch)  # host arrays: 32 leading and 16 trailing pad columns dropped, logits cut
    want = untrimmed.update({k: jnp.asarray(v) for k, v in batch.items()})  # device arrays: used as given
    for key in ("loss", "kl", "entropy", "grad_norm", "num_tokens"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-7)
    # The gradients agree through AdamW's moments (mu is linear in the clipped gradient, nu quadratic), each leaf to
    # 1e-5 of its largest entry: f32 sums over differently trimmed shapes round differently. The parameters are
    # compared only where |g| >= 1e-6: AdamW's first step moves each one by lr * g / (|g| + eps), whose slope in g is
    # up to lr / eps = 1e6 for an entry with |g| near eps, so a rounding difference of 1e-12 there moves it by 1e-6.
    for a, b in zip(jax.tree.leaves(trimmed.opt_state), jax.tree.leaves(untrimmed.opt_state), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max(initial=0.0)))
    # Where |g| >= 1e-6 that slope is at most 100, so the usual tolerance holds.
    adam = trimmed.opt_state[1][0]
    for a, b, mu in zip(jax.tree.leaves(trimmed.params), jax.tree.leaves(untrimmed.params),
                        jax.tree.leaves(adam.mu), strict=True):
        steep = np.abs(np.asarray(mu)) / (1 - config.adam_b1) < 1e-6
        np.testing.assert_allclose(np.where(steep, 0, a), np.where(steep, 0, b), rtol=1e-5, atol=1e-6)
    moved = [np.abs(np.asarray(a) - np.asarray(p)).max()
             for a, p in zip(jax.tree.leaves(trimmed.params), jax.tree.leaves(initial), strict=True)]
    assert min(moved) > 0  # the update was applied to every leaf
