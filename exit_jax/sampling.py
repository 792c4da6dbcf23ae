"""KV-cache sampling for GRPO groups: one prefill per prompt, G continuations each, a jitted while-loop decode.

Prompts of different lengths are left-padded to a bucketed length; rotary positions come from each row's own mask, so a
row's continuation does not depend on the other rows. Randomness is per row: a row's key is derived from
``(key, row_id, step)``, never from its index in the batch.

Returned log-probs are those of the sampling distribution ``log_softmax(logits / temperature)`` before top-k / top-p
truncation (the convention the GRPO loss uses for its importance ratios); greedy decoding returns
``log_softmax(logits)``. The response embedding is the mean of the policy's final hidden states at the positions whose
logits scored the response tokens: exactly the hidden states of the training forward pass that computes log-probs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from exit_jax.sharding import batch_shard_count, batch_sharding, global_array, host_value, replicated


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample. ``num_samples`` is the GRPO group size G (continuations per prompt)."""

    max_new_tokens: int
    num_samples: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False
    stop_token_ids: tuple[int, ...] = ()
    stop_sequences: tuple[tuple[int, ...], ...] = ()  # multi-token stops, as token ids
    pad_id: int = 0
    prompt_bucket: int = 16  # prompts are padded to a multiple of this (fewer recompilations)
    # Keep each prompt's KV cache once and let its G rows attend to it (Decoder.with_shared_prefix) instead of
    # repeating it per row: G-fold less prompt cache to hold and to read per decode step. The same distribution;
    # the attention's sums are split in two, so values differ from the repeated cache's in the last bits.
    share_prompt_cache: bool = True
    # With a shared prompt cache, decode in this many phases, each over a cache of the new-token slots it can reach
    # (up to the phase's last step, rounded up to a multiple of 16) instead of all of them: attention reads about
    # (1 + 1/phases) / 2 of the new-token cache on average. Each phase compiles its own loop body. (Peer workload,
    # tiny, 128 new tokens: 8 phases ~1.1x faster than 1; 16 phases of 8 slots were slower than 8.)
    decode_phases: int = 8

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (or greedy=True), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.decode_phases < 1:
            raise ValueError(f"decode_phases must be >= 1, got {self.decode_phases}")


class SampleOutput(NamedTuple):
    """Rows are ordered prompt-major: row ``i * G + j`` is sample j of prompt i.

    tokens: int32 [rows, max_new_tokens], ``pad_id`` after the end.
    lengths: int32 [rows], generated tokens including the stop token.
    logprobs: f32 [rows, max_new_tokens], 0 after the end.
    embeddings: f32 [rows, embed], mean final hidden state over the response.
    truncated: bool [rows], True when max_new_tokens ran out before a stop.
    prompt_tokens: int32 [rows, prompt_len] (left-padded), prompt_mask: bool [rows, prompt_len].
    """

    tokens: np.ndarray
    lengths: np.ndarray
    logprobs: np.ndarray
    embeddings: np.ndarray
    truncated: np.ndarray
    prompt_tokens: np.ndarray
    prompt_mask: np.ndarray


def filter_logits(logits: jax.Array, top_k: int, top_p: float) -> jax.Array:
    """Mask (to -inf) tokens outside the top-k and outside the top-p nucleus. ``logits: [rows, vocab]``."""
    if top_k and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep_sorted = mass_before < top_p
        threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return logits


_CDF_BLOCK = 64  # vocabulary entries per block of the two-level inverse-CDF search


def inverse_cdf(logits: jax.Array, uniforms: jax.Array) -> jax.Array:
    """Draw one token per row from ``softmax(logits)`` by inverse CDF. ``logits: [rows, vocab]``, ``uniforms: [rows]``
    in [0, 1).

    Two-level search in O(vocab) per row: the block of ``_CDF_BLOCK`` entries whose cumulative mass first exceeds
    ``u * total``, then the entry inside it. (A full-vocabulary cumsum lowers to a reduce-window on XLA:CPU, several
    times the work.) Token i is drawn iff cdf[i-1] <= u * total < cdf[i], so a token of probability 0 (-inf logit)
    is never drawn, however the floats round.
    """
    rows, vocab = logits.shape
    blocks = -(-vocab // _CDF_BLOCK)
    weights = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))  # unnormalised, exactly 0 for -inf logits
    weights = jnp.pad(weights, ((0, 0), (0, blocks * _CDF_BLOCK - vocab))).reshape(rows, blocks, _CDF_BLOCK)
    block_cdf = jnp.cumsum(jnp.sum(weights, axis=-1), axis=-1)  # [rows, blocks]
    target = uniforms * block_cdf[:, -1]
    block = jnp.minimum(jnp.sum(block_cdf <= target[:, None], axis=-1), blocks - 1)
    before = jnp.where(block > 0, jnp.take_along_axis(block_cdf, jnp.maximum(block - 1, 0)[:, None], -1)[:, 0], 0.0)
    inside = jnp.take_along_axis(weights, block[:, None, None], axis=1)[:, 0]  # [rows, _CDF_BLOCK]
    index = jnp.sum(jnp.cumsum(inside, axis=-1) <= (target - before)[:, None], axis=-1)
    # Rounding can leave the offset at or past the block's own (differently summed) total: clamp to the block's last
    # entry of positive weight, never to a zero-probability one.
    last_positive = jnp.max(jnp.where(inside > 0, jnp.arange(_CDF_BLOCK), 0), axis=-1)
    return block * _CDF_BLOCK + jnp.minimum(index, last_positive)


def _choose(logits: jax.Array, uniforms: jax.Array, config: SamplingConfig) -> tuple[jax.Array, jax.Array]:
    """Next token and its log-prob for each row. ``logits: [rows, vocab]``, ``uniforms: [rows]`` (``row_uniforms``)."""
    if config.greedy:
        token = jnp.argmax(logits, axis=-1)
    else:
        scaled = logits / config.temperature
        # Inverse CDF: one uniform per row instead of a Gumbel per vocabulary entry (the random bits dominated the
        # decode step on CPU).
        token = inverse_cdf(filter_logits(scaled, config.top_k, config.top_p), uniforms)
        logits = scaled
    logprob = jnp.take_along_axis(logits, token[:, None], -1)[:, 0] - jax.nn.logsumexp(logits, axis=-1)
    return token, logprob


def row_uniforms(key: jax.Array, row_ids: jax.Array, steps: jax.Array) -> jax.Array:
    """The uniform that draws row r's token at step s: ``uniform(fold_in(fold_in(key, r), s))``, a function of the
    row's id and the step only (never of the row's index in the batch). ``steps: [S]`` -> ``[S, rows]``."""
    def one(step, row):
        return jax.random.uniform(jax.random.fold_in(jax.random.fold_in(key, row), step), (), jnp.float32)

    return jax.vmap(lambda step: jax.vmap(lambda row: one(step, row))(row_ids))(steps)


def _stop_table(config: SamplingConfig) -> np.ndarray:
    """Stop sequences right-aligned in a [num_stops, window] table, -1 = wildcard."""
    seqs = [tuple(s) for s in config.stop_sequences if s] + [(t,) for t in config.stop_token_ids]
    if not seqs:
        return np.full((1, 1), -3, np.int32)  # matches nothing
    window = max(len(s) for s in seqs)
    table = np.full((len(seqs), window), -1, np.int32)
    for i, s in enumerate(seqs):
        table[i, window - len(s):] = s
    return table


@functools.partial(jax.jit, static_argnames=("graphdef", "config", "cache_length"))
def _prefill(graphdef, state, tokens, mask, key, row_ids, *, config: SamplingConfig, cache_length: int):
    model = nnx.merge(graphdef, state)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
    group = config.num_samples
    if config.share_prompt_cache:
        prompt_cache = model.init_cache(tokens.shape[0], tokens.shape[1])
        logits, hidden, prompt_cache = model(tokens, positions, mask, cache=prompt_cache, cache_index=0)
        own = model.init_cache(tokens.shape[0] * group, cache_length - tokens.shape[1])
        cache = model.with_shared_prefix(prompt_cache, own)
    else:
        cache = model.init_cache(tokens.shape[0], cache_length)
        logits, hidden, cache = model(tokens, positions, mask, cache=cache, cache_index=0)
        cache = jax.tree.map(lambda x: jnp.repeat(x, group, axis=0), cache)
    last_logits = jnp.repeat(logits[:, -1], group, axis=0)
    last_hidden = jnp.repeat(hidden[:, -1].astype(jnp.float32), group, axis=0)
    next_position = jnp.repeat(positions[:, -1] + 1, group, axis=0)
    first, first_logprob = _choose(last_logits, row_uniforms(key, row_ids, jnp.zeros((1,), jnp.int32))[0], config)
    return cache, first.astype(jnp.int32), first_logprob, last_hidden, next_position


@functools.partial(jax.jit, static_argnames=("graphdef", "config", "prompt_length"),
                   donate_argnames=("cache",))
def _decode(graphdef, state, cache, first, first_logprob, first_hidden, next_position, key, row_ids,
            stop_table, *, config: SamplingConfig, prompt_length: int):
    model = nnx.merge(graphdef, state)
    rows, steps = first.shape[0], config.max_new_tokens
    window = stop_table.shape[1]
    own_offset = 0 if config.share_prompt_cache else prompt_length  # the cache slot of the first new token

    def stopped(recent: jax.Array) -> jax.Array:
        hit = (recent[:, None, :] == stop_table[None]) | (stop_table[None] == -1)
        return jnp.any(jnp.all(hit, axis=-1), axis=-1)

    # Every step's uniforms at once, before the loop: the per-step threefry calls were loops of their own inside it.
    uniforms = (jnp.zeros((steps, rows), jnp.float32) if config.greedy
                else row_uniforms(key, row_ids, jnp.arange(steps, dtype=jnp.int32)))
    # Rotary tables for every step's position, computed once here (inside the loop XLA re-evaluated cos / sin in
    # every consumer fusion, once per head).
    step_positions = next_position[None, :, None] + jnp.arange(steps, dtype=jnp.int32)[:, None, None] - 1
    rope_cos, rope_sin = jax.vmap(model.rope_tables)(step_positions)  # [steps, rows, 1, 1, head_dim]
    recent = jnp.concatenate([jnp.full((rows, window - 1), -2, jnp.int32), first[:, None]], axis=1)
    done = stopped(recent)
    tokens = jnp.full((rows, steps), config.pad_id, jnp.int32).at[:, 0].set(first)
    logprobs = jnp.zeros((rows, steps), jnp.float32).at[:, 0].set(first_logprob)
    carry = dict(step=jnp.int32(1), cache=cache, last=first, position=next_position, done=done,
                 recent=recent, tokens=tokens, logprobs=logprobs, hidden_sum=first_hidden,
                 lengths=jnp.ones((rows,), jnp.int32))

    def running(end):
        return lambda c: (c["step"] < end) & ~jnp.all(c["done"])

    def body(c):
        step = c["step"]
        logits, hidden, cache = model(c["last"][:, None], c["position"][:, None],
                                      jnp.ones((rows, 1), bool), cache=c["cache"],
                                      cache_index=own_offset + step - 1, rope=(rope_cos[step], rope_sin[step]))
        token, logprob = _choose(logits[:, 0], uniforms[step], config)
        active = ~c["done"]
        token = jnp.where(active, token, config.pad_id).astype(jnp.int32)
        recent = jnp.concatenate([c["recent"][:, 1:], token[:, None]], axis=1)
        return dict(
            step=step + 1, cache=cache, last=token, position=c["position"] + 1,
            done=c["done"] | stopped(recent), recent=recent,
            tokens=c["tokens"].at[:, step].set(token),
            logprobs=c["logprobs"].at[:, step].set(jnp.where(active, logprob, 0.0)),
            hidden_sum=c["hidden_sum"] + jnp.where(active[:, None], hidden[:, 0].astype(jnp.float32), 0.0),
            lengths=c["lengths"] + active.astype(jnp.int32),
        )

    if config.share_prompt_cache:
        # Step s writes own slot s - 1 and attends to slots <= s - 1: the steps before e need e - 1 slots. A phase
        # ending at e gets e, so the last phase's cache is as long as the input one and the donated buffer can still
        # alias the returned cache.
        own_slots = cache["mask"].shape[1]
        ends = sorted({min(_round_up(-(-own_slots * (j + 1) // config.decode_phases), _WINDOW_ALIGN), own_slots)
                       for j in range(config.decode_phases)})
        for end in ends:
            carry["cache"] = _resize_own_cache(carry["cache"], end)
            carry = jax.lax.while_loop(running(min(end, steps)), body, carry)
        out = carry
    else:
        out = jax.lax.while_loop(running(steps), body, carry)
    embeddings = out["hidden_sum"] / out["lengths"][:, None].astype(jnp.float32)
    # The final cache is returned so the donated input cache can alias it (no copy of the cache into the loop).
    return out["tokens"], out["lengths"], out["logprobs"], embeddings, ~out["done"], out["cache"]


_WINDOW_ALIGN = 16  # decode phases' cache windows are multiples of this many slots


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _resize_own_cache(cache, slots: int):
    """The rows' own cache (not its shared prefix) cut or zero-padded to ``slots`` slots; padding is masked out."""
    def resize(x, axis):
        have = x.shape[axis]
        if have >= slots:
            return jax.lax.slice_in_dim(x, 0, slots, axis=axis)
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, slots - have)
        return jnp.pad(x, pad)

    layers = [{"k": resize(layer["k"], 3), "v": resize(layer["v"], 2)} for layer in cache["layers"]]
    return {**cache, "layers": layers, "mask": resize(cache["mask"], 1)}


class Sampler:
    """Samples from an NNX model kept as (graphdef, state), optionally sharded over a mesh.

    Args:
      model: the policy (``Decoder``); only its graphdef is kept, the state is passed per call so the sampler always
        uses the latest trained parameters.
      mesh: optional (data, fsdp, tensor) mesh; rows are sharded over the data axes.
      max_length: the context length (prompt + new tokens); defaults to the model's max_position_embeddings.
    """

    def __init__(self, model: nnx.Module, mesh: Mesh | None = None, max_length: int | None = None):
        self.graphdef, _ = nnx.split(model)
        self.mesh = mesh
        self.max_length = max_length or model.config.max_position_embeddings

    def _row_multiple(self) -> int:
        return batch_shard_count(self.mesh)

    def sample(self, state: nnx.State, prompts: Sequence[Sequence[int]], config: SamplingConfig,
               key: jax.Array, row_ids: Sequence[int] | None = None) -> SampleOutput:
        """Sample ``config.num_samples`` continuations of every prompt (token id lists).

        ``row_ids`` (one per output row, default 0..rows-1) seed each row's randomness.
        """
        if not prompts:
            raise ValueError("no prompts to sample from")
        lengths = [len(p) for p in prompts]
        if min(lengths) == 0:
            raise ValueError("empty prompt: every prompt needs at least one token")
        bucket = config.prompt_bucket
        prompt_length = -(-max(lengths) // bucket) * bucket
        if max(lengths) + config.max_new_tokens > self.max_length:
            worst = int(np.argmax(lengths))
            raise ValueError(
                f"prompt {worst} has {lengths[worst]} tokens; with max_new_tokens={config.max_new_tokens} it "
                f"exceeds the context length {self.max_length}. Shorten the prompt or lower max_new_tokens.")
        prompt_length = min(prompt_length, self.max_length - config.max_new_tokens)
        group = config.num_samples
        multiple = self._row_multiple()
        padded_prompts = -(-len(prompts) // multiple) * multiple
        tokens = np.full((padded_prompts, prompt_length), config.pad_id, np.int32)
        mask = np.zeros((padded_prompts, prompt_length), bool)
        for i, p in enumerate(prompts):
            tokens[i, prompt_length - len(p):] = p
            mask[i, prompt_length - len(p):] = True
        tokens[len(prompts):, -1] = config.pad_id  # padding prompts: one dummy token
        mask[len(prompts):, -1] = True
        rows = padded_prompts * group
        ids = np.arange(rows, dtype=np.int32)
        if row_ids is not None:
            if len(row_ids) != len(prompts) * group:
                raise ValueError(f"row_ids has {len(row_ids)} entries, expected {len(prompts) * group}")
            ids[: len(row_ids)] = np.asarray(row_ids, np.int32)
        stop_table = _stop_table(config)
        args = (tokens, mask, ids)
        if self.mesh is not None:
            args = (global_array(tokens, batch_sharding(self.mesh)),
                    global_array(mask, batch_sharding(self.mesh)),
                    global_array(ids, batch_sharding(self.mesh, 1)))
            key = global_array(key, replicated(self.mesh))
        context = jax.set_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext()
        with context:
            cache, first, first_lp, first_hidden, next_pos = _prefill(
                self.graphdef, state, args[0], args[1], key, args[2], config=config,
                cache_length=prompt_length + config.max_new_tokens)
            out = _decode(self.graphdef, state, cache, first, first_lp, first_hidden, next_pos, key,
                          args[2], jnp.asarray(stop_table), config=config, prompt_length=prompt_length)
        out = [host_value(x) for x in out[:5]]
        keep = len(prompts) * group
        new_tokens, new_lengths, logprobs, embeddings, truncated = (x[:keep] for x in out)
        return SampleOutput(new_tokens, new_lengths, logprobs, embeddings, truncated,
                            np.repeat(tokens[: len(prompts)], group, axis=0),
                            np.repeat(mask[: len(prompts)], group, axis=0))
