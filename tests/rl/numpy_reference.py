"""Straightforward NumPy / per-sample Python-loop references for the GRPO maths (float64, no vectorisation).

Written independently of exit_jax.rl: loops over samples and tokens, spelled out from the formulas in
docs/rl.md (paper Eq. 4, TRL's loss types), with analytic derivatives w.r.t. the per-token log-probs.
"""

from __future__ import annotations

import math

import numpy as np


def advantages(rewards, group, estimator="grpo", scale="group", ddof=1, eps=1e-4, multiplier=None):
    rewards = [float(r) for r in rewards]
    out = []
    all_mean = sum(rewards) / len(rewards)
    batch_std = math.sqrt(sum((r - all_mean) ** 2 for r in rewards) / (len(rewards) - ddof))
    for start in range(0, len(rewards), group):
        g = rewards[start:start + group]
        mean = sum(g) / group
        std = math.sqrt(sum((r - mean) ** 2 for r in g) / (group - ddof))
        for r in g:
            if max(g) == min(g):
                out.append(0.0)
                continue
            if estimator == "rloo":
                centred = r - (sum(g) - r) / (group - 1)
            else:
                centred = r - mean
            if estimator == "dr_grpo" or scale == "none":
                a = centred
            elif scale == "group":
                a = centred / (std + eps)
            else:
                a = centred / (batch_std + eps)
            out.append(a)
    out = np.array(out)
    if multiplier is not None:
        out = out * np.asarray(multiplier, np.float64)
    return out


def log_softmax_gather(logits, tokens):
    """[B,T,V], [B,T] -> [B,T] with column 0 = 0; entry t = log p(tokens[t] | logits[t-1])."""
    b, t, _ = logits.shape
    out = np.zeros((b, t))
    ent = np.zeros((b, t))
    for i in range(b):
        for j in range(1, t):
            row = logits[i, j - 1].astype(np.float64)
            lse = np.log(np.sum(np.exp(row - row.max()))) + row.max()
            logp = row - lse
            out[i, j] = logp[tokens[i, j]]
            ent[i, j] = -np.sum(np.exp(logp) * logp)
    return out, ent


def loss_and_grad(lp, old, adv, mask, loss_type, eps=0.2, eps_high=None, level="token", ref=None, beta=0.0,
                  max_len=1, num_micro=1, block=1):
    """Returns (loss, dloss/dlp [B,T]) of the aggregated clipped objective, by explicit loops.

    ``bnpo`` puts row ``k`` in micro-batch ``(k // block) % num_micro``."""
    eps_high = eps if eps_high is None else eps_high
    b, t = lp.shape
    mask = np.asarray(mask, bool)
    terms = {}  # (i, j) -> (term value, dterm/dlp_ij own-token part)
    seq_parts = {}  # i -> (ratio, clipped, n) for sequence level
    for i in range(b):
        active = [j for j in range(t) if mask[i, j]]
        if level == "sequence" and active:
            s = sum(lp[i, j] - old[i, j] for j in active) / len(active)
            r = math.exp(s)
            clipped = (r < 1 - eps and adv[i] < 0) or (r > 1 + eps_high and adv[i] > 0)
            seq_parts[i] = (r, clipped, len(active))
        for j in active:
            if level == "sequence":
                r, clipped, _ = seq_parts[i]
            else:
                r = math.exp(lp[i, j] - old[i, j])
                clipped = (r < 1 - eps and adv[i] < 0) or (r > 1 + eps_high and adv[i] > 0)
            if clipped:
                value = -(1 - eps if adv[i] < 0 else 1 + eps_high) * adv[i]
            else:
                value = -r * adv[i]
            dvalue = 0.0
            if beta > 0:
                d = ref[i, j] - lp[i, j]
                value += beta * (math.exp(d) - d - 1)
                dvalue += beta * (1 - math.exp(d))
            terms[(i, j)] = (value, dvalue, clipped, r)
    weight = np.zeros((b, t))
    total_active = int(mask.sum())
    for i in range(b):
        n_i = int(mask[i].sum())
        for j in range(t):
            if not mask[i, j]:
                continue
            if loss_type == "grpo":
                weight[i, j] = 1.0 / (b * max(n_i, 1))
            elif loss_type == "dr_grpo":
                weight[i, j] = 1.0 / (b * max_len)
            elif loss_type == "dapo":
                weight[i, j] = 1.0 / max(total_active, 1)
            elif loss_type == "bnpo":
                micro_rows = [k for k in range(b) if (k // block) % num_micro == (i // block) % num_micro]
                n_micro = int(sum(mask[k].sum() for k in micro_rows))
                weight[i, j] = 1.0 / (num_micro * max(n_micro, 1))
    loss = sum(weight[i, j] * terms[(i, j)][0] for (i, j) in terms)
    grad = np.zeros((b, t))
    for (i, j), (_, dvalue, clipped, r) in terms.items():
        grad[i, j] += weight[i, j] * dvalue
        if clipped:
            continue
        if level == "token":
            grad[i, j] += weight[i, j] * (-r * adv[i])
        else:  # every active token u of row i gets d(-r A)/ds * ds/dlp_u = -r A / n.
            n = seq_parts[i][2]
            for u in range(t):
                if mask[i, u]:
                    grad[i, u] += weight[i, j] * (-r * adv[i]) / n
    return loss, grad
