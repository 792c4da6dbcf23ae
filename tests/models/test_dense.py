"""dense(): the materialised-transpose backward against NumPy, the compiled dtypes of its dots, and the decoder built
on it (same forward, gradients as close to f32 as autodiff's, sharded = one device).

References: float64 NumPy products of the bf16-rounded operands; the decoder's f32-compute gradients; the compiled
HLO (which dtype each dot's operands have).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exit_jax.models.config import ModelConfig
from exit_jax.models.decoder import Decoder
from exit_jax.models.dense import dense, dot_operand_dtypes, materialized_transpose, transposed_backward

BF16 = jnp.bfloat16


def _operands(rows=96, inner=80, out=112, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(rows, inner)), BF16)
    w = jnp.asarray(rng.normal(size=(inner, out)) * 0.1, jnp.float32)
    g = jnp.asarray(rng.normal(size=(rows, out)), BF16)
    return x, w, g


def _vjp(x, w, g, transposed):
    out, pullback = jax.vjp(lambda x, w: dense(x, w, transposed), x, w)
    return (out, *pullback(g))


def _f64(a):
    return np.asarray(jnp.asarray(a, jnp.float32), np.float64)


def test_gradients_match_numpy_products_of_the_rounded_operands():
    x, w, g = _operands()
    out, dx, dw = jax.jit(_vjp, static_argnums=3)(x, w, g, True)
    x64, g64, w64 = _f64(x), _f64(g), _f64(jnp.asarray(w, BF16))  # the forward and backward use bf16(w)
    assert out.dtype == BF16 and dx.dtype == BF16 and dw.dtype == jnp.float32
    bf16_ulp = 2.0 ** -8
    for got, want in ((out, x64 @ w64), (dx, g64 @ w64.T)):
        np.testing.assert_allclose(_f64(got), want, rtol=bf16_ulp, atol=bf16_ulp * np.abs(want).max())
    # The weight gradient accumulates and stays in f32: far closer than a bf16 rounding.
    want = x64.T @ g64
    np.testing.assert_allclose(np.asarray(dw, np.float64), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [jnp.float32, BF16])
def test_the_plain_product_and_autodiff_agree(dtype):
    x, w, g = (a.astype(dtype) if a.dtype == BF16 else a for a in _operands(seed=1))
    fast = jax.jit(_vjp, static_argnums=3)(x, w, g, True)
    plain = jax.jit(_vjp, static_argnums=3)(x, w, g, False)
    if dtype == jnp.float32:  # f32 compute: the same dots
        for a, b in zip(fast, plain, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6 * np.abs(b).max())
        return
    for a, b in zip(fast, plain, strict=True):
        a, b = _f64(a), _f64(b)
        np.testing.assert_allclose(a, b, rtol=2.0 ** -7, atol=2.0 ** -7 * np.abs(b).max())


def test_materialized_transpose_is_the_transpose_and_nan_stays_non_finite():
    a = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(jax.jit(materialized_transpose)(a), a.T)
    x, w, g = _operands(seed=2)
    x = x.at[0, 0].set(jnp.nan)
    _, dx, dw = jax.jit(_vjp, static_argnums=3)(x, w, g, True)
    assert not np.isfinite(np.asarray(dw, np.float32)).all()
    w = w.at[0, 0].set(jnp.nan)
    _, dx, _ = jax.jit(_vjp, static_argnums=3)(x, w, g, True)
    assert not np.isfinite(np.asarray(dx, np.float32)).all()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the XLA:CPU dot forms are what the backward works around")
def test_every_dot_of_the_transposed_backward_runs_in_bf16_on_cpu():
    x, w, g = _operands(rows=256, inner=128, out=192)
    compiled = {mode: jax.jit(_vjp, static_argnums=3).lower(x, w, g, mode).compile().as_text()
                for mode in (True, False)}
    fast, plain = (dot_operand_dtypes(compiled[mode]) for mode in (True, False))
    assert len(fast) == 3 and all(pair == ("bf16", "bf16") for pair in fast), fast
    # The premise: autodiff's backward dots are upcast to f32 by XLA:CPU (if this starts failing, the workaround may
    # no longer be needed; see models/dense.py).
    assert ("f32", "f32") in plain, plain


def test_auto_mode_picks_the_transposed_backward_only_for_bf16_on_cpu():
    on_cpu = jax.default_backend() == "cpu"
    assert transposed_backward("auto", "bfloat16") == on_cpu
    assert not transposed_backward("auto", "float32")
    assert transposed_backward("transposed", "float32") and not transposed_backward("xla", "bfloat16")
    with pytest.raises(ValueError, match="backward_dots"):
        transposed_backward("fast", "bfloat16")
    with pytest.raises(ValueError, match="backward_dots"):
        ModelConfig(vocab_size=8, hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=8,
                    backward_dots="fast")


TINY = dict(vocab_size=96, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
            max_position_embeddings=64)


def _decoder_grads(config: ModelConfig, tokens, mesh=None):
    model = Decoder(config, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if mesh is not None:
        from exit_jax.sharding import shard_state

        params = shard_state(params, mesh)

    def loss(params):
        logits, _, _ = nnx.merge(graphdef, params, rest)(tokens, positions, mask)
        log_probs = jax.nn.log_softmax(logits[:, :-1], axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1))

    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    mask = jnp.ones(tokens.shape, bool)
    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    return value, [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(grads)]


def _relative_error(got, want):
    return max(np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_decoder_gradients_are_as_close_to_f32_as_autodiff(tied):
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 96, size=(4, 24)), jnp.int32)
    base = ModelConfig(**TINY, tie_word_embeddings=tied, attention_bias=True)
    _, exact = _decoder_grads(base, tokens)
    fast_loss, fast = _decoder_grads(base.replace(compute_dtype="bfloat16", backward_dots="transposed"), tokens)
    plain_loss, plain = _decoder_grads(base.replace(compute_dtype="bfloat16", backward_dots="xla"), tokens)
    np.testing.assert_allclose(float(fast_loss), float(plain_loss), rtol=1e-3)  # the forward, up to rounding
    fast_error, plain_error = _relative_error(fast, exact), _relative_error(plain, exact)
    assert fast_error < 0.05 and fast_error < 1.5 * plain_error, (fast_error, plain_error)


def test_sharded_decoder_gradients_match_one_device():
    from exit_jax.sharding import make_mesh

    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 96, size=(4, 16)), jnp.int32)
    config = ModelConfig(**TINY, compute_dtype="bfloat16", backward_dots="transposed")
    mesh = make_mesh(1, 2, 4)
    with jax.set_mesh(mesh):
        sharded_loss, sharded = _decoder_grads(config, tokens, mesh)
    single_loss, single = _decoder_grads(config, tokens)
    np.testing.assert_allclose(float(sharded_loss), float(single_loss), rtol=1e-2)
    assert _relative_error(sharded, single) < 0.02
