"""Offline procedural math problems with exact answers, for the embedded CPU default.

Each problem is a pure function of ``(seed, index)``, so a task id ``proc/<index>`` regenerates its
problem anywhere. Families, all with short prompts a tiny policy can read:

- ``add``: ``34+58``; ``sub``: ``71-29`` (may be negative); ``mul``: ``7*8``;
- ``two_step``: ``3+4*5`` (precedence matters, a common first-attempt slip);
- ``linear``: ``Solve 3x+4=19`` (integer x);
- ``fraction``: ``1/2+1/3`` (reduced fraction answer, e.g. ``5/6``);
- ``mod``: ``47 mod 5``.

Train and held-out splits are disjoint by construction: a problem's split is a hash of its text, so
the same text can never land in both.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from fractions import Fraction

from exit_jax.domains.math.datasets import MathProblem

FAMILIES = ("add", "sub", "mul", "two_step", "linear", "fraction", "mod")


def fraction_text(value: Fraction) -> str:
    """``5/6``, or ``3`` for a whole number: the answer format of every procedural problem."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def generate_problem(
    seed: int, index: int, families: Sequence[str] = FAMILIES, max_operand: int = 50
) -> tuple[str, str, str]:
    """The problem at ``index`` of the stream for ``seed``: returns (family, problem text, exact
    answer)."""
    rng = random.Random(f"exit-math:{seed}:{index}")
    family = families[rng.randrange(len(families))]
    small = max(3, max_operand // 4)
    if family == "add":
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        return family, f"{a}+{b}", str(a + b)
    if family == "sub":
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        return family, f"{a}-{b}", str(a - b)
    if family == "mul":
        a, b = rng.randint(2, small), rng.randint(2, small)
        return family, f"{a}*{b}", str(a * b)
    if family == "two_step":
        a, b, c = rng.randint(1, max_operand), rng.randint(2, small), rng.randint(2, small)
        return family, f"{a}+{b}*{c}", str(a + b * c)
    if family == "linear":
        a, x, b = rng.randint(2, small), rng.randint(-small, small), rng.randint(0, max_operand)
        return family, f"Solve {a}x+{b}={a * x + b}", str(x)
    if family == "fraction":
        a, b = rng.randint(1, small), rng.randint(2, small)
        c, d = rng.randint(1, small), rng.randint(2, small)
        return family, f"{a}/{b}+{c}/{d}", fraction_text(Fraction(a, b) + Fraction(c, d))
    if family == "mod":
        a, m = rng.randint(small, 4 * max_operand), rng.randint(2, small)
        return family, f"{a} mod {m}", str(a % m)
    raise ValueError(f"unknown procedural family {family!r}; choose from {FAMILIES}")


def is_heldout_text(text: str, heldout_fraction: float) -> bool:
    """Whether a problem text belongs to the held-out split (a deterministic hash of the text)."""
    bucket = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < heldout_fraction


def procedural_splits(
    seed: int,
    train_size: int,
    heldout_size: int,
    families: Sequence[str] = FAMILIES,
    max_operand: int = 50,
    heldout_fraction: float = 0.2,
) -> tuple[list[MathProblem], list[MathProblem]]:
    """Disjoint train and held-out problem lists (unique texts), generated from one seed.

    Raises:
      ValueError: when the families and operand range cannot supply enough distinct problems.
    """
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"procedural_families: unknown family {family!r}; choose from {FAMILIES}")
    train: dict[str, MathProblem] = {}
    heldout: dict[str, MathProblem] = {}
    limit = 50 * (train_size + heldout_size) + 1000
    for index in range(limit):
        if len(train) >= train_size and len(heldout) >= heldout_size:
            break
        family, text, answer = generate_problem(seed, index, families, max_operand)
        target = heldout if is_heldout_text(text, heldout_fraction) else train
        wanted = heldout_size if target is heldout else train_size
        if text not in target and len(target) < wanted:
            target[text] = MathProblem(f"proc/{index}", text, answer, f"procedural/{family}")
    if len(train) < train_size or len(heldout) < heldout_size:
        raise ValueError(
            f"procedural source gave {len(train)} train / {len(heldout)} held-out distinct "
            "problems, asked for "
            f"{train_size} / {heldout_size}: raise max_operand or add families"
        )
    return list(train.values()), list(heldout.values())
