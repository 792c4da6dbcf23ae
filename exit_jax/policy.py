"""The policy as domains see it: chat conversations in, sampled response texts out.

``Policy`` owns the tokenizer and the sampler (and through it the compiled sampling programs). Prompts are left-padded
to one fixed length (``max_prompt_length``) so sampling and training each compile once. A conversation longer than that
keeps its last ``max_prompt_length`` tokens (counted in ``truncated_prompts``); a domain whose prompts get truncated
should shorten them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from exit_jax.models.tokenizer import chat_tokens
from exit_jax.sampling import SampleOutput, Sampler, SamplingConfig
from exit_jax.types import Message, PolicyFn


class Policy:
    def __init__(self, model: nnx.Module, tokenizer: Any, mesh: Any, *, max_prompt_length: int,
                 max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 share_prompt_cache: bool = True):
        self.tokenizer = tokenizer
        self.max_prompt_length = max_prompt_length
        self.sampler = Sampler(model, mesh=mesh, max_length=max_prompt_length + max_new_tokens)
        eos = tokenizer.eos_token_id
        self.sampling = SamplingConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            stop_token_ids=(eos,) if eos is not None else (), pad_id=tokenizer.pad_token_id or 0,
            prompt_bucket=max_prompt_length, share_prompt_cache=share_prompt_cache)
        self.truncated_prompts = 0

    def encode(self, conversation: Sequence[Message]) -> list[int]:
        ids = chat_tokens(self.tokenizer, conversation, add_generation_prompt=True)
        if len(ids) > self.max_prompt_length:
            self.truncated_prompts += 1
            ids = ids[-self.max_prompt_length:]
        return ids

    def decode(self, tokens: np.ndarray, length: int) -> str:
        ids = [int(t) for t in tokens[:length]]
        if ids and ids[-1] in self.sampling.stop_token_ids:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def sample(self, state: nnx.State, conversations: Sequence[Sequence[Message]], num_samples: int,
               key: jax.Array, greedy: bool = False) -> tuple[list[str], SampleOutput]:
        """``num_samples`` responses per conversation (prompt-major rows) and the raw sampler output."""
        config = dataclasses.replace(self.sampling, num_samples=num_samples, greedy=greedy)
        prompts = [self.encode(c) for c in conversations]
        out = self.sampler.sample(state, prompts, config, key)
        texts = [self.decode(out.tokens[i], int(out.lengths[i])) for i in range(len(out.tokens))]
        return texts, out

    def policy_fn(self, state: nnx.State, key: jax.Array, greedy: bool = False) -> PolicyFn:
        """A ``PolicyFn`` for domain rollouts: each call samples one response per conversation with a fresh key."""
        calls = [0]

        def fn(conversations: Sequence[Sequence[Message]]) -> list[str]:
            if not conversations:
                return []
            calls[0] += 1
            texts, _ = self.sample(state, conversations, 1, jax.random.fold_in(key, calls[0]), greedy=greedy)
            return texts

        return fn
