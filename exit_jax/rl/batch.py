"""Host-side assembly of a GRPO train batch from sampled prompts and completions (NumPy, at the loop's seam).

Produces the dict documented in ``exit_jax.rl.train_step``: prompt (left-padded) followed by completion
(right-padded) in one row, rotary positions counted over real tokens only, and a loss mask on the generated tokens.
"""

from __future__ import annotations

import numpy as np


def completion_batch(prompt_tokens: np.ndarray, prompt_mask: np.ndarray, completion_tokens: np.ndarray,
                     completion_lengths: np.ndarray, advantages: np.ndarray, *,
                     truncated: np.ndarray | None = None, old_log_probs: np.ndarray | None = None,
                     assistant_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Joins prompts and completions into the train-step batch.

    Args:
      prompt_tokens: [B, P] int, left-padded; prompt_mask: [B, P] bool.
      completion_tokens: [B, C] int, right-padded; completion_lengths: [B] number of real completion tokens.
      advantages: [B] f32.
      truncated: optional [B] bool (for ``mask_truncated_completions``).
      old_log_probs: optional [B, C] sampler log-probs of the completion tokens (0 past the end).
      assistant_mask: optional [B, C] bool restricting the loss to some completion tokens (e.g. assistant turns of
        a multi-turn history; tool outputs False).

    Returns:
      dict with tokens / positions [B, P + C] int32, attention_mask / loss_mask [B, P + C] bool, advantages [B] f32,
      and truncated [B] / old_log_probs [B, P + C] when given.
    """
    prompt_tokens = np.asarray(prompt_tokens)
    batch, prompt_length = prompt_tokens.shape
    completion_length = completion_tokens.shape[1]
    generated = np.arange(completion_length)[None, :] < np.asarray(completion_lengths)[:, None]
    if assistant_mask is not None:
        generated = generated & np.asarray(assistant_mask, bool)
    attention_mask = np.concatenate([np.asarray(prompt_mask, bool),
                                     np.arange(completion_length)[None, :] < np.asarray(completion_lengths)[:, None]],
                                    axis=1)
    if not attention_mask[:, :prompt_length].any(axis=1).all():
        raise ValueError("every row needs at least one prompt token (the first completion token's context)")
    out = {
        "tokens": np.concatenate([prompt_tokens, np.asarray(completion_tokens)], axis=1).astype(np.int32),
        "positions": np.maximum(np.cumsum(attention_mask, axis=1) - 1, 0).astype(np.int32),
        "attention_mask": attention_mask,
        "loss_mask": np.concatenate([np.zeros((batch, prompt_length), bool), generated], axis=1),
        "advantages": np.asarray(advantages, np.float32),
    }
    if truncated is not None:
        out["truncated"] = np.asarray(truncated, bool)
    if old_log_probs is not None:
        out["old_log_probs"] = np.concatenate(
            [np.zeros((batch, prompt_length), np.float32), np.asarray(old_log_probs, np.float32)], axis=1)
    return out


def trim_padding(batch: dict[str, np.ndarray], multiple: int = 16) -> tuple[dict[str, np.ndarray], int]:
    """Drops the columns that are padding in every row and finds where the loss starts, both in steps of
    ``multiple`` so that only a few shapes (compilations) ever occur.

    A batch laid out for a fixed ``max_prompt_length + max_new_tokens`` is mostly padding when prompts are short:
    the train step's cost is linear in the columns it keeps and, for the vocabulary projection, in the columns from
    the first trained token on.

    Args:
      batch: the train-step dict of host arrays (``tokens``, ``positions``, ``attention_mask``, ``loss_mask`` and
        optional [B, T] ``old_log_probs`` / ``ref_log_probs``; [B] entries are left alone).
      multiple: the bucket size, in columns.

    Returns:
      (the trimmed batch, ``loss_start``): no ``loss_mask`` column before ``loss_start`` is True (a multiple of
      ``multiple``, 0 when it would be below 1), for ``train_step``'s static argument of that name.
    """
    attention = np.asarray(batch["attention_mask"], bool)
    length = attention.shape[1]
    used = np.flatnonzero(attention.any(axis=0))
    if used.size == 0:
        return batch, 0
    lead = (int(used[0]) // multiple) * multiple
    trail = ((length - 1 - int(used[-1])) // multiple) * multiple
    keep = slice(lead, length - trail)
    out = {k: (np.asarray(v)[:, keep] if np.ndim(v) == 2 and np.shape(v)[1] == length else v)
           for k, v in batch.items()}
    trained = np.flatnonzero(np.asarray(out["loss_mask"], bool).any(axis=0))
    loss_start = (int(trained[0]) // multiple) * multiple if trained.size else 0
    return out, loss_start if loss_start >= 1 else 0


def shared_prefix_length(batch: dict[str, np.ndarray], group_size: int, multiple: int = 16) -> int:
    """How many leading columns every GRPO group shares, for the train step's shared-prefix forward.

    Rows ``g * G .. g * G + G - 1`` form group ``g``. A column is shared when its token, attention-mask and position
    entries are equal across every group's rows; the prefix is the run of shared columns from column 0, cut at the
    first column any row trains on (``loss_mask``) and rounded down to a multiple of ``multiple`` (few distinct
    shapes, few compilations). Returns 0 when no such prefix of at least ``multiple`` columns exists, or when it
    would cover the whole row.
    """
    tokens = np.asarray(batch["tokens"])
    rows, length = tokens.shape
    if group_size < 2 or rows % group_size:
        return 0
    shared = np.ones(length, bool)
    for key in ("tokens", "attention_mask", "positions"):
        grouped = np.asarray(batch[key]).reshape(rows // group_size, group_size, length)
        shared &= (grouped == grouped[:, :1]).all(axis=(0, 1))
    prefix = length if shared.all() else int(np.argmin(shared))
    trained = np.flatnonzero(np.asarray(batch["loss_mask"], bool).any(axis=0))
    if trained.size:
        prefix = min(prefix, int(trained[0]))
    prefix = (prefix // multiple) * multiple
    return prefix if 0 < prefix < length else 0
