"""The policy: one Flax NNX decoder for the Llama 3.x, Qwen2 / Qwen2.5 and Qwen3 (dense) families.

RMSNorm, rotary embeddings (default / linear / llama3 scaling), grouped-query attention, SwiGLU MLP, optional q/k/v
and o_proj biases, optional per-head RMSNorm of queries and keys before RoPE (Qwen3's ``q_norm`` / ``k_norm``), a
``head_dim`` that need not be ``hidden / heads``, tied or untied embeddings. Parameters are stored in
``param_dtype`` (f32 by default) and cast to ``compute_dtype`` at use; attention softmax, norms and logits accumulate
in f32. The seven projections of a layer go through ``dense.dense``, whose backward keeps bf16 compute on XLA:CPU's
fast path (``backward_dots``).

Every parameter carries ``logical_axes`` metadata (see ``exit_jax/sharding.py``). Weight layouts are "einsum style"
(``q: [embed, heads, head_dim]``) so heads shard over the tensor axis without reshapes.

Call signature, the same for training and sampling::

    logits, hidden, cache = model(tokens, positions, attention_mask, cache=None, cache_index=None)

``hidden`` is the final-norm hidden state ``[batch, seq, embed]``: the in-model embedding the diversity bonus pools.
With a ``cache`` (see ``init_cache``), the new keys/values are written at slots ``cache_index .. cache_index+seq`` and
queries attend to every valid earlier slot. A cache may also carry a shared ``prefix`` (see ``with_shared_prefix``):
the KV cache of P prompts, kept once and attended by every row of each prompt's group of ``rows / P`` (GRPO's G
samples of one prompt) before the rows' own slots, instead of a copy of the prompt's keys and values per row.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from exit_jax.models.config import ModelConfig
from exit_jax.models.dense import dense, transposed_backward
from exit_jax.sharding import constrain

Cache = dict[str, Any]
_MASK_VALUE = -1e30  # finite, so fully masked (padding) queries give a uniform row instead of NaN


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str, ...], dtype: str,
           init: str = "normal") -> nnx.Param:
    if init == "ones":
        value = jnp.ones(shape, dtype)
    elif init == "zeros":
        value = jnp.zeros(shape, dtype)
    else:
        value = (0.02 * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype)
    return nnx.Param(value, logical_axes=axes)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype: str, rngs: nnx.Rngs):
        self.scale = _param(rngs, (dim,), ("norm",), dtype, init="ones")
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (self.scale.get_value().astype(jnp.float32) * normed.astype(x.dtype).astype(jnp.float32)
                ).astype(x.dtype)


def rotary_tables(positions: jax.Array, inverse_frequencies: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(cos, sin)`` of the rotary angles, each f32 ``[batch, seq, 1, head_dim]`` (HF's rotate-half layout).

    Computed once per forward and shared by every layer's queries and keys: computed inside ``rotary``, XLA fused
    the cosine and sine into each consumer and re-evaluated them for every head (a decode step spent ~0.45 ms per
    layer on them at the peers' small size).
    """
    freqs = positions.astype(jnp.float32)[..., None] * inverse_frequencies  # [B, T, hd/2]
    angles = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    return jnp.cos(angles), jnp.sin(angles)


def rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Apply rotary embeddings (HF's rotate-half convention) to ``x: [batch, seq, heads, head_dim]``."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, h, k, hd, pd = (config.hidden_size, config.num_heads, config.num_kv_heads,
                           config.head_dim, config.param_dtype)
        self.q = _param(rngs, (d, h, hd), ("embed", "heads", "head_dim"), pd)
        self.k = _param(rngs, (d, k, hd), ("embed", "kv_heads", "head_dim"), pd)
        self.v = _param(rngs, (d, k, hd), ("embed", "kv_heads", "head_dim"), pd)
        self.o = _param(rngs, (h, hd, d), ("heads", "head_dim", "embed"), pd)
        if config.attention_bias:
            self.q_bias = _param(rngs, (h, hd), ("heads", "head_dim"), pd, init="zeros")
            self.k_bias = _param(rngs, (k, hd), ("kv_heads", "head_dim"), pd, init="zeros")
            self.v_bias = _param(rngs, (k, hd), ("kv_heads", "head_dim"), pd, init="zeros")
        else:
            self.q_bias = self.k_bias = self.v_bias = None
        self.o_bias = _param(rngs, (d,), ("embed",), pd, init="zeros") if config.output_bias else None
        if config.qk_norm:  # one [head_dim] scale shared by every head, as HF's q_norm / k_norm
            self.q_norm = RMSNorm(hd, config.rms_norm_eps, pd, rngs)
            self.k_norm = RMSNorm(hd, config.rms_norm_eps, pd, rngs)
        else:
            self.q_norm = self.k_norm = None
        self.num_groups = h // k
        self.compute_dtype = config.compute_dtype
        self.transposed_backward = transposed_backward(config.backward_dots, config.compute_dtype)

    def _project(self, x: jax.Array, weight: nnx.Param, bias: nnx.Param | None) -> jax.Array:
        if self.transposed_backward:
            batch, seq, embed = x.shape
            w = weight.get_value()
            out = dense(x.reshape(batch * seq, embed), w.reshape(embed, -1), True).reshape(batch, seq, *w.shape[1:])
        else:
            out = jnp.einsum("btd,dnh->btnh", x, weight.get_value().astype(self.compute_dtype))
        if bias is not None:
            out = out + bias.get_value().astype(self.compute_dtype)
        return out

    def __call__(self, x: jax.Array, rope: tuple[jax.Array, jax.Array], key_mask: jax.Array, query_slots: jax.Array,
                 key_slots: jax.Array, layer_cache: Cache | None, cache_index: jax.Array | None,
                 prefix: Cache | None = None) -> tuple[jax.Array, Cache | None]:
        q = self._project(x, self.q, self.q_bias)
        k = self._project(x, self.k, self.k_bias)
        if self.q_norm is not None:  # over head_dim of each head, before the rotation
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rotary(q, *rope), rotary(k, *rope)
        v = self._project(x, self.v, self.v_bias)
        q = constrain(q, ("batch", "seq", "heads", "head_dim"))
        # Values are kept kv-head-major, [batch, kv_heads, slots, head_dim], and the cached keys transposed,
        # [batch, kv_heads, head_dim, slots]: both attention dots then read the cache in place as plain row-major
        # matmuls. (A [batch, slots, kv_heads, ...] cache is copied by every decode step; a [.., slots, head_dim] key
        # cache made XLA:CPU pack the keys for every decode step's score dot, 3.5x slower than the transposed one.)
        v = jnp.swapaxes(v, 1, 2)
        if layer_cache is None:
            k, key_pattern = jnp.swapaxes(k, 1, 2), "bksh"
        else:
            k = jax.lax.dynamic_update_slice_in_dim(
                layer_cache["k"], jnp.transpose(k, (0, 2, 3, 1)).astype(layer_cache["k"].dtype), cache_index, axis=3)
            v = jax.lax.dynamic_update_slice_in_dim(layer_cache["v"], v.astype(layer_cache["v"].dtype),
                                                    cache_index, axis=2)
            layer_cache = {"k": k, "v": v}
            key_pattern = "bkhs"
        batch, seq, heads, head_dim = q.shape
        kv_heads = k.shape[1]
        # Queries go [batch, kv_heads, groups, seq, head_dim] first, so that both attention dots are plain batched
        # matmuls over (batch, kv_heads) with (groups x seq) rows: with seq in the middle of the output (the
        # "btkgh" layout) XLA:CPU ran them as many small products, ~2x slower forward and 1.5x forward + backward.
        q = jnp.transpose(q.reshape(batch, seq, kv_heads, self.num_groups, head_dim), (0, 2, 3, 1, 4))
        scores = jnp.einsum(f"bkgth,{key_pattern}->bkgts", q, k.astype(q.dtype),
                            preferred_element_type=jnp.float32) * (head_dim ** -0.5)
        visible = key_mask[:, None, :] & (key_slots[None, None, :] <= query_slots[None, :, None])
        scores = jnp.where(visible[:, None, None, :, :], scores, _MASK_VALUE)
        if prefix is None:
            probs = jax.nn.softmax(scores, axis=-1).astype(self.compute_dtype)
            out = jnp.einsum("bkgts,bksh->bkgth", probs, v.astype(self.compute_dtype))
        else:
            out = self._attend_with_prefix(q, scores, v, prefix)
        out = jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(batch * seq, heads * head_dim)
        out = dense(out, self.o.get_value().reshape(heads * head_dim, -1), self.transposed_backward)
        if self.o_bias is not None:
            out = out + self.o_bias.get_value().astype(out.dtype)
        out = out.reshape(batch, seq, -1)
        return out, layer_cache

    def _attend_with_prefix(self, q: jax.Array, scores: jax.Array, v: jax.Array, prefix: Cache) -> jax.Array:
        """Attention over a shared prefix and the rows' own slots, one softmax over both.

        ``q: [B, kv, g, t, hd]``, own ``scores: [B, kv, g, t, S]`` (masked), own ``v: [B, kv, S, hd]``; ``prefix``:
        ``k: [P, kv, hd, Sp]``, ``v: [P, kv, Sp, hd]``, ``mask: [P, Sp]``, with B = P x G rows, prompt-major. The
        prefix dots take each prompt's G x g x t queries as the rows of one matmul, so a group reads its prompt's
        keys and values once, not once per row.
        """
        batch, kv_heads, groups, seq, head_dim = q.shape
        prompts, prefix_length = prefix["mask"].shape
        size = batch // prompts

        def by_prompt(x):  # [B, kv, g, t, n] -> [P, kv, G * g * t, n]
            x = x.reshape(prompts, size, kv_heads, groups, seq, x.shape[-1])
            return jnp.transpose(x, (0, 2, 1, 3, 4, 5)).reshape(prompts, kv_heads, size * groups * seq, -1)

        def by_row(x):  # the inverse of by_prompt
            x = x.reshape(prompts, kv_heads, size, groups, seq, x.shape[-1])
            return jnp.transpose(x, (0, 2, 1, 3, 4, 5)).reshape(batch, kv_heads, groups, seq, -1)

        prefix_scores = jnp.einsum("pkrh,pkhs->pkrs", by_prompt(q), prefix["k"].astype(q.dtype),
                                   preferred_element_type=jnp.float32) * (head_dim ** -0.5)
        prefix_scores = jnp.where(prefix["mask"][:, None, None, :], prefix_scores, _MASK_VALUE)
        probs = jax.nn.softmax(jnp.concatenate([by_row(prefix_scores), scores], axis=-1), axis=-1
                               ).astype(self.compute_dtype)
        prefix_out = jnp.einsum("pkrs,pksh->pkrh", by_prompt(probs[..., :prefix_length]),
                                prefix["v"].astype(self.compute_dtype))
        own_out = jnp.einsum("bkgts,bksh->bkgth", probs[..., prefix_length:], v.astype(self.compute_dtype))
        return by_row(prefix_out) + own_out


class MLP(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, f, pd = config.hidden_size, config.intermediate_size, config.param_dtype
        self.gate = _param(rngs, (d, f), ("embed", "mlp"), pd)
        self.up = _param(rngs, (d, f), ("embed", "mlp"), pd)
        self.down = _param(rngs, (f, d), ("mlp", "embed"), pd)
        self.compute_dtype = config.compute_dtype
        self.transposed_backward = transposed_backward(config.backward_dots, config.compute_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Rank-2 matmuls on [batch * seq, embed]: with [batch, seq, embed] operands XLA:CPU lays the SwiGLU
        # gradient out transposed for the weight-gradient dot, a strided copy that cost ~40% of the MLP backward.
        batch, seq, embed = x.shape
        rows = x.reshape(batch * seq, embed)
        gate = dense(rows, self.gate.get_value(), self.transposed_backward)
        up = dense(rows, self.up.get_value(), self.transposed_backward)
        hidden = (jax.nn.silu(gate) * up).reshape(batch, seq, -1)
        hidden = constrain(hidden, ("batch", "seq", "mlp")).reshape(batch * seq, -1)
        return dense(hidden, self.down.get_value(), self.transposed_backward).reshape(batch, seq, embed)


class DecoderLayer(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype, rngs)
        self.attn = Attention(config, rngs)
        self.mlp_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype, rngs)
        self.mlp = MLP(config, rngs)

    def __call__(self, x, rope, key_mask, query_slots, key_slots, layer_cache, cache_index, prefix=None):
        attended, layer_cache = self.attn(self.attn_norm(x), rope, key_mask, query_slots, key_slots, layer_cache,
                                          cache_index, prefix)
        x = x + attended
        x = x + self.mlp(self.mlp_norm(x))
        return constrain(x, ("batch", "seq", "act_embed")), layer_cache


class Decoder(nnx.Module):
    """Llama / Qwen2 / Qwen3 decoder-only transformer."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        pd = config.param_dtype
        self.embed = _param(rngs, (config.vocab_size, config.hidden_size), ("vocab", "embed"), pd)
        self.layers = nnx.List([DecoderLayer(config, rngs) for _ in range(config.num_layers)])
        self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, pd, rngs)
        self.lm_head = None if config.tie_word_embeddings else _param(
            rngs, (config.hidden_size, config.vocab_size), ("embed", "vocab"), pd)

    def init_cache(self, batch: int, length: int, dtype: str | None = None) -> Cache:
        """An empty KV cache for ``length`` slots: per layer ``k: [batch, kv_heads, head_dim, length]`` (keys
        transposed, see ``Attention``) and ``v: [batch, kv_heads, length, head_dim]``."""
        cfg = self.config
        dtype = dtype or cfg.compute_dtype
        key_shape = (batch, cfg.num_kv_heads, cfg.head_dim, length)
        value_shape = (batch, cfg.num_kv_heads, length, cfg.head_dim)
        return {
            "layers": [{"k": jnp.zeros(key_shape, dtype), "v": jnp.zeros(value_shape, dtype)}
                       for _ in range(cfg.num_layers)],
            "mask": jnp.zeros((batch, length), bool),
        }

    @staticmethod
    def with_shared_prefix(prefix: Cache, cache: Cache) -> Cache:
        """``cache`` (the rows' own slots, from ``init_cache``) attending first to ``prefix``, the filled cache of P
        prompts whose continuations are the cache's rows, G = rows / P consecutive rows per prompt. Own slots then
        hold only what follows the prompt (``cache_index`` counts from 0 after it); rotary positions come from the
        ``positions`` passed with the tokens, as always."""
        prompts, rows = prefix["mask"].shape[0], cache["mask"].shape[0]
        if rows % prompts:
            raise ValueError(f"a prefix of {prompts} prompts needs whole groups of rows; the cache has {rows}")
        return {**cache, "prefix": {"layers": prefix["layers"], "mask": prefix["mask"]}}

    def rope_tables(self, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(cos, sin)`` for ``positions [batch, seq]``, each f32 ``[batch, seq, 1, head_dim]``: pass them as
        ``rope=`` to compute them once outside a loop (see ``rotary_tables``)."""
        return rotary_tables(positions, jnp.asarray(self.config.rope_inverse_frequencies()))

    def __call__(self, tokens: jax.Array, positions: jax.Array, attention_mask: jax.Array,
                 cache: Cache | None = None, cache_index: jax.Array | int | None = None, logits_from: int = 0,
                 rope: tuple[jax.Array, jax.Array] | None = None) -> tuple[jax.Array, jax.Array, Cache | None]:
        """Forward pass.

        Args:
          tokens: int32 [batch, seq].
          positions: int32 [batch, seq] rotary positions (position of each token within its own sequence).
          attention_mask: bool [batch, seq], True for real tokens (padding may be on either side).
          cache: optional KV cache from ``init_cache`` (or ``with_shared_prefix``); new keys/values go to slots
            ``cache_index ..``.
          cache_index: int32 scalar slot of ``tokens[:, 0]`` in the cache.
          logits_from: static; logits only for positions ``logits_from ..`` (a train step that needs log-probs of
            the completion only skips the vocabulary projection of the prompt).

        Returns:
          logits f32 [batch, seq - logits_from, vocab], final hidden states [batch, seq, embed], and the updated
          cache.
        """
        # Every dot traced below (and its autodiff transposes, which copy the precision) asks for the config's
        # matmul precision: f32 compute is f32 on TPU / GPU too (ModelConfig.matmul_precision).
        with jax.default_matmul_precision(self.config.precision):
            return self._forward(tokens, positions, attention_mask, cache, cache_index, logits_from, rope)

    def _forward(self, tokens, positions, attention_mask, cache, cache_index, logits_from, rope):
        cd = self.config.compute_dtype
        attention_mask = attention_mask.astype(bool)
        x = jnp.take(self.embed.get_value(), tokens, axis=0).astype(cd)
        x = constrain(x, ("batch", "seq", "act_embed"))
        seq = tokens.shape[1]
        if cache is None:
            key_mask = attention_mask
            query_slots = key_slots = jnp.arange(seq)
            cache_index = 0
        else:
            cache_index = jnp.asarray(cache_index, jnp.int32)
            key_mask = jax.lax.dynamic_update_slice_in_dim(cache["mask"], attention_mask, cache_index, axis=1)
            query_slots = cache_index + jnp.arange(seq)
            key_slots = jnp.arange(cache["mask"].shape[1])
        if rope is None:
            rope = self.rope_tables(positions)
        prefix = None if cache is None else cache.get("prefix")
        new_layers = []
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache["layers"][i]
            layer_prefix = None if prefix is None else {**prefix["layers"][i], "mask": prefix["mask"]}
            x, layer_cache = layer(x, rope, key_mask, query_slots, key_slots, layer_cache, cache_index, layer_prefix)
            new_layers.append(layer_cache)
        hidden = self.final_norm(x)
        head = (self.embed.get_value().T if self.lm_head is None else self.lm_head.get_value()).astype(cd)
        logits = jnp.einsum("btd,dv->btv", hidden[:, logits_from:] if logits_from else hidden, head,
                            preferred_element_type=jnp.float32)
        logits = constrain(logits, ("batch", "seq", "vocab"))
        new_cache = None if cache is None else {"layers": new_layers, "mask": key_mask}
        if prefix is not None:
            new_cache["prefix"] = prefix
        return logits, hidden, new_cache
