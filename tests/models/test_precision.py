"""ModelConfig.matmul_precision: which precision every dot of the decoder (forward and backward) asks for.

TPUs and GPUs run f32 dots at reduced precision unless a dot asks for HIGHEST (bf16 passes on TPU, TF32 on recent
GPUs: on an H100 the parity check's logits were 3.5e-4 from PyTorch's with the default, above its 1e-4 tolerance).
The lowered StableHLO says what each dot asks for on any backend; on XLA:CPU the result must not change.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exit_jax.models.config import ModelConfig
from exit_jax.models.embedded import embedded_policy


def _dot_precisions(model) -> tuple[int, set[str]]:
    """(number of dot_generals, their distinct precision attributes) in the lowered gradient of the logits."""
    tokens = jnp.asarray(np.arange(16).reshape(2, 8) % 50, jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(8), (2, 8))
    mask = jnp.ones((2, 8), bool)
    graphdef, params = nnx.split(model)

    def loss(p):
        return nnx.merge(graphdef, p)(tokens, positions, mask)[0].sum()

    text = jax.jit(jax.grad(loss)).lower(params).as_text()
    dots = re.findall(r"stablehlo\.dot_general[^\n]*", text)
    return len(dots), {m.group(0) if (m := re.search(r"precision = \[[^\]]*\]", d)) else "none" for d in dots}


@pytest.mark.parametrize("compute_dtype,setting,expected", [
    ("float32", "auto", "precision = [HIGHEST, HIGHEST]"),
    ("bfloat16", "auto", "precision = [DEFAULT, DEFAULT]"),
    ("float32", "default", "precision = [DEFAULT, DEFAULT]"),
    ("float32", "high", "precision = [HIGH, HIGH]"),
    ("bfloat16", "highest", "precision = [HIGHEST, HIGHEST]"),
])
def test_every_dot_forward_and_backward_asks_for_the_configured_precision(compute_dtype, setting, expected):
    model, _ = embedded_policy(0, compute_dtype=compute_dtype, matmul_precision=setting, backward_dots="xla")
    count, precisions = _dot_precisions(model)
    layers = model.config.num_layers
    assert count >= 2 * (9 * layers + 1)  # forward and backward: 7 projections + 2 attention dots a layer, head
    assert precisions == {expected}


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        ModelConfig(vocab_size=8, hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=8,
                    matmul_precision="fast")


def test_precision_does_not_change_results_on_cpu():
    """XLA:CPU computes f32 dots in f32 whatever they ask for: the embedded defaults' results are bitwise those of
    a dot that asks for nothing in particular (what the decoder traced before this setting existed)."""
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 500, (2, 24)), jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(24), (2, 24))
    mask = jnp.ones((2, 24), bool)
    outs = {}
    for setting in ("auto", "default"):
        model, _ = embedded_policy(0, matmul_precision=setting)
        graphdef, params = nnx.split(model)

        def loss(p, graphdef=graphdef):
            return jax.nn.log_softmax(nnx.merge(graphdef, p)(tokens, positions, mask)[0]).mean()

        value, grads = jax.jit(jax.value_and_grad(loss))(params)
        outs[setting] = [np.asarray(value)] + [np.asarray(g) for g in jax.tree.leaves(grads)]
    if jax.default_backend() != "cpu":
        pytest.skip("the bitwise claim is about XLA:CPU")
    for a, b in zip(outs["auto"], outs["default"], strict=True):
        np.testing.assert_array_equal(a, b)
