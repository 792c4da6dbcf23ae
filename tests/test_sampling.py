"""The KV-cache sampler against a teacher-forced full forward pass (the independent reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from exit_jax import sampling
from exit_jax.models.config import ModelConfig
from exit_jax.models.decoder import Decoder
from exit_jax.sampling import Sampler, SamplingConfig, filter_logits
from exit_jax.sharding import make_mesh, shard_state

CONFIG = ModelConfig(vocab_size=96, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                     intermediate_size=96, max_position_embeddings=128, attention_bias=True)
PROMPTS = [[5, 6, 7], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28], [9]]


@pytest.fixture(scope="module")
def model():
    return Decoder(CONFIG, nnx.Rngs(0))


_FORWARD = nnx.jit(lambda m, t, p, a: m(t, p, a)[:2])
_WIDTH = 48  # every prompt + continuation fits; right padding does not change earlier positions (causal)


def _teacher_forced(model, prompt, continuation):
    seq = list(prompt) + list(continuation)
    tokens = np.zeros((1, _WIDTH), np.int32)
    tokens[0, : len(seq)] = seq
    mask = np.arange(_WIDTH)[None] < len(seq)
    logits, hidden = _FORWARD(model, jnp.asarray(tokens), jnp.arange(_WIDTH)[None], jnp.asarray(mask))
    start = len(prompt) - 1
    return np.asarray(logits[0, start:start + len(continuation)]), np.asarray(
        hidden[0, start:start + len(continuation)])


def test_logprobs_and_embeddings_equal_teacher_forcing(model):
    sampler = Sampler(model)
    config = SamplingConfig(max_new_tokens=10, num_samples=3, temperature=0.7)
    out = sampler.sample(nnx.state(model), PROMPTS, config, jax.random.key(1))
    assert out.tokens.shape == (9, 10)
    for row in range(9):
        prompt = PROMPTS[row // 3]
        logits, hidden = _teacher_forced(model, prompt, out.tokens[row])
        expected = jax.nn.log_softmax(logits / 0.7)[np.arange(10), out.tokens[row]]
        np.testing.assert_allclose(out.logprobs[row], expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.embeddings[row], hidden.mean(0), atol=1e-4, rtol=0)


def test_greedy_equals_full_forward_argmax(model):
    sampler = Sampler(model)
    out = sampler.sample(nnx.state(model), PROMPTS, SamplingConfig(max_new_tokens=8, greedy=True),
                         jax.random.key(0))
    width = max(map(len, PROMPTS)) + 8
    forward = nnx.jit(lambda m, t, p, a: m(t, p, a)[0])
    for row, prompt in enumerate(PROMPTS):
        seq = list(prompt)
        for _ in range(8):  # reference: re-run the whole sequence each step, no cache (right-padded: causal)
            tokens = np.zeros((1, width), np.int32)
            tokens[0, : len(seq)] = seq
            mask = np.arange(width)[None] < len(seq)
            logits = forward(model, jnp.asarray(tokens), jnp.arange(width)[None], jnp.asarray(mask))
            seq.append(int(jnp.argmax(logits[0, len(seq) - 1])))
        assert out.tokens[row].tolist() == seq[len(prompt):]


def test_row_independent_of_other_prompt_lengths(model):
    sampler = Sampler(model)
    config = SamplingConfig(max_new_tokens=8, num_samples=2)
    target = [40, 41, 42, 43]
    a = sampler.sample(nnx.state(model), [target, [1, 2]], config, jax.random.key(5), row_ids=[0, 1, 2, 3])
    b = sampler.sample(nnx.state(model), [target, list(range(30, 60))], config, jax.random.key(5),
                       row_ids=[0, 1, 2, 3])
    np.testing.assert_array_equal(a.tokens[:2], b.tokens[:2])
    np.testing.assert_allclose(a.logprobs[:2], b.logprobs[:2], atol=1e-5)


def test_one_device_and_mesh_give_same_tokens(model):
    config = SamplingConfig(max_new_tokens=8, num_samples=2, temperature=1.0)
    single = Sampler(model).sample(nnx.state(model), PROMPTS, config, jax.random.key(2))
    mesh = make_mesh(1, 2, 4)
    sharded_state = shard_state(nnx.state(model), mesh)
    multi = Sampler(model, mesh=mesh).sample(sharded_state, PROMPTS, config, jax.random.key(2))
    np.testing.assert_array_equal(single.tokens, multi.tokens)
    np.testing.assert_allclose(single.logprobs, multi.logprobs, atol=1e-5)


@pytest.mark.parametrize("phases", [1, 2, 8])  # 40 new tokens: own-cache windows {40}, {32, 40}, {16, 32, 40}
def test_shared_prompt_cache_matches_the_per_row_copy(model, phases):
    """One KV cache per prompt (read by its G rows), decoded in phases over growing windows of the new-token slots,
    samples what a per-row copy of the whole cache samples; and it holds the prompt's cache once."""
    common = dict(max_new_tokens=40, num_samples=4, temperature=0.9, stop_token_ids=(3,))
    shared = SamplingConfig(**common, decode_phases=phases)
    repeated = SamplingConfig(**common, share_prompt_cache=False)
    a = Sampler(model).sample(nnx.state(model), PROMPTS, shared, jax.random.key(7))
    b = Sampler(model).sample(nnx.state(model), PROMPTS, repeated, jax.random.key(7))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert 0 < a.truncated.sum() < len(a.truncated)  # rows stop in different phases, others run to the end
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5, rtol=0)

    graphdef, state = nnx.split(model)
    prompts, width = len(PROMPTS), 32
    tokens, mask = jnp.ones((prompts, width), jnp.int32), jnp.ones((prompts, width), bool)
    ids = jnp.arange(prompts * 4, dtype=jnp.int32)
    cache = jax.eval_shape(lambda: sampling._prefill(graphdef, state, tokens, mask, jax.random.key(0), ids,
                                                     config=shared, cache_length=width + 12))[0]
    kv, head_dim = CONFIG.num_kv_heads, CONFIG.hidden_size // CONFIG.num_heads
    assert cache["prefix"]["layers"][0]["k"].shape == (prompts, kv, head_dim, width)  # once per prompt
    assert cache["layers"][0]["k"].shape == (prompts * 4, kv, head_dim, 12)  # per row: only the new tokens
    copied = jax.eval_shape(lambda: sampling._prefill(graphdef, state, tokens, mask, jax.random.key(0), ids,
                                                      config=repeated, cache_length=width + 12))[0]
    assert "prefix" not in copied and copied["layers"][0]["k"].shape == (prompts * 4, kv, head_dim, width + 12)


def test_stop_tokens_and_multi_token_stop_sequences(model):
    sampler = Sampler(model)
    free = sampler.sample(nnx.state(model), PROMPTS, SamplingConfig(max_new_tokens=8, greedy=True),
                          jax.random.key(0))
    row = free.tokens[1]
    stop_token = int(row[3])
    first_hit = row.tolist().index(stop_token)
    out = sampler.sample(nnx.state(model), PROMPTS,
                         SamplingConfig(max_new_tokens=8, greedy=True, stop_token_ids=(stop_token,), pad_id=0),
                         jax.random.key(0))
    assert out.lengths[1] == first_hit + 1 and not out.truncated[1]
    assert out.tokens[1, : first_hit + 1].tolist() == row[: first_hit + 1].tolist()
    assert (out.tokens[1, first_hit + 1:] == 0).all() and (out.logprobs[1, first_hit + 1:] == 0).all()
    pair = (int(row[4]), int(row[5]))
    out = sampler.sample(nnx.state(model), PROMPTS,
                         SamplingConfig(max_new_tokens=8, greedy=True, stop_sequences=(pair,)), jax.random.key(0))
    seq = row.tolist()
    expected_end = next(i for i in range(1, 8) if (seq[i - 1], seq[i]) == pair) + 1
    assert out.lengths[1] == expected_end
    assert free.truncated.all() or free.lengths.max() == 8


def test_filter_logits_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 20)).astype(np.float32)
    got = np.asarray(filter_logits(jnp.asarray(logits), top_k=5, top_p=1.0))
    for r in range(4):
        keep = np.argsort(-logits[r])[:5]
        assert set(np.flatnonzero(np.isfinite(got[r]))) == set(keep)
    got = np.asarray(filter_logits(jnp.asarray(logits), top_k=0, top_p=0.6))
    for r in range(4):
        order = np.argsort(-logits[r])
        probs = np.exp(logits[r][order] - logits[r].max())
        probs /= probs.sum()
        n_keep = int(np.searchsorted(np.cumsum(probs), 0.6) + 1)  # smallest prefix with mass >= 0.6
        assert set(np.flatnonzero(np.isfinite(got[r]))) == set(order[:n_keep])


def test_prompt_longer_than_context_is_a_clear_error(model):
    sampler = Sampler(model)
    with pytest.raises(ValueError, match="prompt 1 has 125 tokens.*context length 128"):
        sampler.sample(nnx.state(model), [[1, 2], [3] * 125], SamplingConfig(max_new_tokens=8), jax.random.key(0))
    with pytest.raises(ValueError, match="empty prompt"):
        sampler.sample(nnx.state(model), [[]], SamplingConfig(max_new_tokens=8), jax.random.key(0))


def test_sampled_token_frequencies_match_the_distribution():
    """Inverse-CDF draws follow softmax(logits / T) restricted to the top-k (checked at 5 sigma)."""
    from exit_jax.sampling import _choose, row_uniforms

    rows = 40_000
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, 1.5, 0.2], np.float32)
    for top_k, temperature in ((0, 1.0), (3, 0.7)):
        config = SamplingConfig(max_new_tokens=1, temperature=temperature, top_k=top_k)
        uniforms = row_uniforms(jax.random.key(7), jnp.arange(rows), jnp.zeros((1,), jnp.int32))[0]
        tokens, _ = jax.jit(lambda u, c=config: _choose(jnp.broadcast_to(jnp.asarray(logits), (rows, 8)), u, c))(
            uniforms)
        scaled = logits / temperature
        if top_k:
            scaled = np.where(scaled >= np.sort(scaled)[-top_k], scaled, -np.inf)
        expected = np.exp(scaled - scaled.max())
        expected /= expected.sum()
        counts = np.bincount(np.asarray(tokens), minlength=8) / rows
        sigma = np.sqrt(expected * (1 - expected) / rows)
        assert np.all(np.abs(counts - expected) <= 5 * sigma + 1e-12), (counts, expected)
        assert counts[expected == 0].sum() == 0


@pytest.mark.parametrize("vocab", [7, 64, 150, 2048])
def test_inverse_cdf_matches_numpy_search_and_never_draws_zero_probability(vocab):
    """The two-level search equals NumPy's float64 searchsorted on the full CDF (away from float ties), and -inf
    logits (first entry, block edges, the padded tail's neighbours) are never drawn, even for u at 0 and near 1."""
    from exit_jax.sampling import inverse_cdf

    rng = np.random.default_rng(vocab)
    rows = 512
    logits = rng.normal(0, 2, (rows, vocab)).astype(np.float32)
    banned = rng.random((rows, vocab)) < 0.3
    banned[:, 0] = True
    banned[:, 63::64] = True
    banned[:, -1] = True
    banned[np.arange(rows), rng.integers(0, vocab, rows)] = False  # every row keeps at least one token
    logits = np.where(banned, -np.inf, logits)
    uniforms = rng.random(rows).astype(np.float32)
    uniforms[:4] = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5, 1e-9]
    tokens = np.asarray(jax.jit(inverse_cdf)(jnp.asarray(logits), jnp.asarray(uniforms)))
    assert not banned[np.arange(rows), tokens].any()
    probs = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(-1, keepdims=True), -1)
    u64 = uniforms.astype(np.float64)
    expected = np.array([np.searchsorted(c, u, side="right") for c, u in zip(cdf, u64, strict=True)])
    expected = np.minimum(expected, vocab - 1)
    near_tie = np.array([np.min(np.abs(c - u)) < 1e-5 for c, u in zip(cdf, uniforms, strict=True)])
    assert np.array_equal(tokens[~near_tie], expected[~near_tie])
    assert near_tie.mean() < 0.05
