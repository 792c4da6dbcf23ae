"""Math answer extraction and the 1/0 correctness reward, decided by math-verify.

The reward follows the paper (notes §3.1): 1 when math-verify judges the response's final boxed
answer equal to the ground truth, else 0. The answer is taken from ``\\boxed{...}`` only (the
prompts ask for it), using math-verify's own boxed extraction so that our verdict is exactly the
library's; a response with no box, a malformed box or anything math-verify cannot parse scores 0 and
never raises.

math-verify bounds its sympy work with ``signal.alarm``, which only works in the main thread. Off
the main thread we call it with its timeouts disabled (the library's documented advice) so graders
running in worker threads still work.
"""

from __future__ import annotations

import dataclasses
import re
import threading

import math_verify
from math_verify import LatexExtractionConfig

# Only a boxed answer counts: no fallback to "the last number in the text".
BOXED_ONLY_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False),)
_BOX_COMMAND = re.compile(r"\\boxed\s*\{")
# Responses are cut to their tail before parsing: the answer is at the end, and parsing cost grows
# with length.
MAX_PARSED_CHARS = 4000
TIMEOUT_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class AnswerVerdict:
    """math-verify's judgement of one response.

    Attributes:
      correct: math-verify says the boxed answer equals the ground truth.
      extracted: the content of the last well-formed ``\\boxed{...}`` (None if there is none).
      parsed: math-verify's parse of the response, as strings (empty when nothing was extracted).
      error: why nothing could be judged ("no_boxed_answer", "unparseable_answer",
      "unparseable_ground_truth",
        "verifier_error"), or None.
    """

    correct: bool
    extracted: str | None
    parsed: tuple[str, ...]
    error: str | None = None


def extract_boxed(text: str) -> str | None:
    """The content of the last brace-balanced ``\\boxed{...}`` in ``text``, else None."""
    last = None
    for match in _BOX_COMMAND.finditer(text):
        depth, start = 1, match.end()
        for position in range(start, len(text)):
            character = text[position]
            if character == "{":
                depth += 1
            elif character == "}":
                depth -= 1
                if depth == 0:
                    last = text[start:position]
                    break
    return last


def _timeouts() -> int | None:
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


def parse_ground_truth(answer: str) -> list:
    """math-verify's parse of a ground-truth answer given as bare LaTeX (``\\frac{1}{2}``,
    ``(1,3]``, ``5``)."""
    timeout = _timeouts()
    text = answer.strip()
    if not text:
        return []
    candidates = [text] if ("\\boxed" in text or "$" in text) else [f"${text}$", text]
    for candidate in candidates:
        parsed = math_verify.parse(candidate, parsing_timeout=timeout)
        if parsed:
            return parsed
    return []


def judge(response: str, ground_truth: str, require_boxed: bool = True) -> AnswerVerdict:
    """Judge a response against a ground-truth answer; never raises.

    Args:
      response: the model's full response text.
      ground_truth: the reference answer as bare LaTeX.
      require_boxed: only a ``\\boxed{}`` answer counts (the paper's setting). With False, a response
        without a box is read by math-verify's default extraction (its last expression), which a tiny
        policy that has never seen ``\\boxed`` can still earn reward from.
    """
    if not isinstance(response, str):
        return AnswerVerdict(False, None, (), "not_text")
    try:
        tail = response[-MAX_PARSED_CHARS:]
        extracted = extract_boxed(tail)
        timeout = _timeouts()
        gold = parse_ground_truth(ground_truth)
        if not gold:
            return AnswerVerdict(False, extracted, (), "unparseable_ground_truth")
        predicted = math_verify.parse(tail, extraction_config=BOXED_ONLY_EXTRACTION, parsing_timeout=timeout)
        if not predicted and extracted is None and not require_boxed:
            predicted = math_verify.parse(tail, parsing_timeout=timeout)
        parsed = tuple(str(item) for item in predicted)
        if not predicted:
            error = "no_boxed_answer" if extracted is None else "unparseable_answer"
            return AnswerVerdict(False, extracted, parsed, error)
        correct = bool(math_verify.verify(gold, predicted, timeout_seconds=timeout))
        return AnswerVerdict(correct, extracted, parsed, None)
    except Exception as error:  # noqa: BLE001 - model output must never crash the trainer
        return AnswerVerdict(False, None, (), f"verifier_error: {type(error).__name__}")


def math_reward(response: str, ground_truth: str, require_boxed: bool = True) -> float:
    """1.0 if math-verify judges the (boxed) answer correct, else 0.0."""
    return 1.0 if judge(response, ground_truth, require_boxed).correct else 0.0
