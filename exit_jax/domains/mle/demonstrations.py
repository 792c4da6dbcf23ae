"""Warm-start demonstrations for the compact format: the embedded policy's stand-in for instruction tuning.

A freshly initialised ~4M-parameter policy cannot write a valid spec, so every rollout would score 0 and GRPO would
have no signal. The warm start teaches the *format and the task structure*, not which solutions are good:

- base prompts -> a random valid spec (one family, sometimes a 2-family ensemble, a few random options);
- improve / debug prompts on a valid previous spec -> an edit of one or two random keys (``key=value`` tokens that
  replace those keys; what an instruction-following model does when asked to improve something);
- debug prompts whose previous answer was not a spec -> a random valid spec;
- diverge prompts -> a spec with a different model family and re-drawn options.

Choices are uniform over the spec grammar, so no competition's good answer is leaked; what a good spec is for each
competition is left for RL to find.
"""

from __future__ import annotations

import numpy as np

from exit_jax.domains.demonstrations import draw_tasks_and_kinds
from exit_jax.domains.mle import spec
from exit_jax.types import Instance

# The hyperparameters each family reads (the compiled program ignores the others), so demonstrated edits change
# something that matters, as an instruction-following model's edits would.
FAMILY_NUMBERS = {"lin": ("c",), "knn": ("k",), "svm": ("c",), "rf": ("n", "leaf"), "et": ("n", "leaf"),
                  "hgb": ("lr", "n", "leaf", "l2"), "mlp": ("a", "lr", "n")}
FAMILY_OPTIONS = {"knn": ("w",)}
_SHARED_OPTIONS = tuple(k for k in spec.CHOICES if k != "w")


def _numbers_for(model: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for family in model.split("+") for k in FAMILY_NUMBERS[family]))


def _options_for(model: str) -> tuple[str, ...]:
    return _SHARED_OPTIONS + tuple(dict.fromkeys(k for f in model.split("+") for k in FAMILY_OPTIONS.get(f, ())))
MODE_WEIGHTS = {"base": 0.4, "improve": 0.3, "diverge": 0.15, "debug": 0.15}


def _number_text(key: str, rng: np.random.Generator) -> str:
    kind, low, high, _ = spec.NUMBERS[key]
    low = max(low, 1e-4 if kind == "f" else 1)
    value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    if kind == "i":
        return str(int(round(value)))
    return f"{value:.2g}"


def _random_tokens(rng: np.random.Generator, family: str | None = None) -> dict[str, str]:
    families = [family or str(rng.choice(spec.FAMILIES))]
    if rng.random() < 0.2:
        families.append(str(rng.choice([f for f in spec.FAMILIES if f != families[0]])))
    tokens = {"model": "+".join(families)}
    options, numbers = _options_for(tokens["model"]), _numbers_for(tokens["model"])
    for key in rng.choice(options, size=int(rng.integers(0, 4)), replace=False):
        tokens[str(key)] = str(rng.choice(spec.CHOICES[str(key)]))
    for key in rng.choice(numbers, size=min(len(numbers), int(rng.integers(0, 3))), replace=False):
        tokens[str(key)] = _number_text(str(key), rng)
    return tokens


def _edit(tokens: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    tokens = dict(tokens)
    for _ in range(int(rng.integers(1, 3))):
        choice = rng.random()
        if choice < 0.2:
            tokens["model"] = str(rng.choice(spec.FAMILIES))
        elif choice < 0.6:
            key = str(rng.choice(_options_for(tokens["model"])))
            tokens[key] = str(rng.choice(spec.CHOICES[key]))
        else:
            key = str(rng.choice(_numbers_for(tokens["model"])))
            tokens[key] = _number_text(key, rng)
    return tokens


def canonical(tokens: dict[str, str]) -> str | None:
    """The canonical text of a token dict, or None when it does not parse (then the demo is redrawn)."""
    text = " ".join(f"{k}={v}" for k, v in tokens.items())
    try:
        return spec.format_spec(spec.parse_spec(text))
    except spec.SpecError:
        return None


def _valid_tokens(rng: np.random.Generator, make) -> tuple[dict[str, str], str]:
    while True:
        tokens = make()
        text = canonical(tokens)
        if text is not None:
            return tokens, text


def _changed(before: dict[str, str], after: dict[str, str]) -> str:
    """The edit text that turns ``before`` into ``after``: the keys whose value changed, in canonical key order."""
    keys = [k for k in spec.KEY_ORDER if k in after and after[k] != before.get(k)]
    return " ".join(f"{k}={after[k]}" for k in keys)


def _garbled(text: str, rng: np.random.Generator) -> str:
    """A spec cut at a random point with a random character run inserted: an answer that does not parse."""
    cut = int(rng.integers(1, max(2, len(text))))
    noise = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789=.+ "), size=int(rng.integers(1, 6))))
    return text[:cut] + noise


def _edit_demo(rng: np.random.Generator) -> tuple[str, str]:
    """(previous spec, an edit of it that changes something and still parses)."""
    while True:
        previous_tokens, previous = _valid_tokens(rng, lambda: _random_tokens(rng))
        edited = _edit(previous_tokens, rng)
        patch = _changed(previous_tokens, edited)
        if not patch:
            continue
        try:
            merged = spec.apply_patch(spec.parse_spec(previous), spec.parse_patch(patch))
        except spec.SpecError:
            continue
        if spec.format_spec(merged) != previous:
            return previous, patch


def demonstrations(task_ids: list[str], count: int, rng: np.random.Generator) -> list[tuple[Instance, str]]:
    """``count`` (instance, response) pairs over ``task_ids`` (training competitions only)."""
    out = []
    for task, mode in draw_tasks_and_kinds(task_ids, MODE_WEIGHTS, count, rng):
        if mode == "base":
            _, response = _valid_tokens(rng, lambda: _random_tokens(rng))
            out.append((Instance(task_id=task), response))
            continue
        feedback = f"val={rng.uniform(0.05, 1.5):.4g}" if mode != "debug" else "error=crash"
        if mode == "diverge":
            previous_tokens, previous = _valid_tokens(rng, lambda: _random_tokens(rng))
            family = str(rng.choice([f for f in spec.FAMILIES if f not in previous_tokens["model"]]))
            _, response = _valid_tokens(rng, lambda family=family: _random_tokens(rng, family))
        elif mode == "debug" and rng.random() < 0.3:  # the previous answer did not parse: write a full spec
            _, previous = _valid_tokens(rng, lambda: _random_tokens(rng))
            previous = _garbled(previous, rng)
            _, response = _valid_tokens(rng, lambda: _random_tokens(rng))
            feedback = "error=unparseable"
        else:
            previous, response = _edit_demo(rng)
        out.append((Instance(task_id=task, iterate=1, previous_response=previous, feedback=feedback, mode=mode,
                             depth=1), response))
    return out
