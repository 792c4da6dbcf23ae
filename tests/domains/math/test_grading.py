"""Answer extraction and equivalence, checked row by row against math-verify called directly."""

import math_verify
import pytest
from math_verify import LatexExtractionConfig

from exit_jax.domains.math.grading import extract_boxed, judge, math_reward

# (response, ground truth, hand-labelled verdict, single well-formed box?). The last column marks
# rows where plain math-verify (default extraction, no boxed requirement) must agree too.
TABLE = [
    # fractions
    ("\\boxed{\\frac{1}{2}}", "\\frac12", True, True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True, True),
    ("\\boxed{1/2}", "\\frac{1}{2}", True, True),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True, True),
    ("so \\boxed{\\dfrac{3}{4}}.", "\\frac34", True, True),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False, True),
    # radicals
    ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", True, True),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True, True),
    ("\\boxed{2\\sqrt{3}}", "2\\sqrt{2}", False, True),
    # intervals
    ("\\boxed{(1,3]}", "(1,3]", True, True),
    ("\\boxed{(-\\infty, 2)}", "(-\\infty,2)", True, True),
    ("\\boxed{[1,3]}", "(1,3]", False, True),
    ("\\boxed{(-\\infty, 2]}", "(-\\infty,2)", False, True),
    # units and decorations
    ("\\boxed{10\\text{ cm}}", "10", True, True),
    ("\\boxed{10 \\mbox{ cm}}", "10", True, True),
    ("\\boxed{45^\\circ}", "45", True, True),
    ("\\boxed{5\\%}", "5", True, True),
    ("\\boxed{11\\text{ cm}}", "10", False, True),
    # signs, symbols, choices
    ("$\\boxed{-3}$", "-3", True, True),
    ("\\boxed{x+1}", "1+x", True, True),
    ("\\boxed{\\text{(B)}}", "B", True, True),
    # malformed or missing boxes
    ("\\boxed{5", "5", False, False),
    ("\\boxed{}", "5", False, False),
    ("\\boxed{{5}", "5", False, False),
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}", False, False),
    ("The answer is 5", "5", False, False),
    ("", "5", False, False),
    ("\\boxed{3} then \\boxed{4}", "3", False, False),
]

BOXED_ONLY = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]


@pytest.mark.parametrize("response,gold,expected,plain_agrees", TABLE, ids=[f"row{i}" for i in range(len(TABLE))])
def test_verdict_matches_hand_label_and_math_verify(response, gold, expected, plain_agrees):
    reference = math_verify.verify(
        math_verify.parse(f"${gold}$"), math_verify.parse(response, extraction_config=BOXED_ONLY)
    )
    assert reference == expected
    assert judge(response, gold).correct == expected
    assert math_reward(response, gold) == (1.0 if expected else 0.0)
    if plain_agrees:
        assert math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(response)) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("\\boxed{a{b}c}", "a{b}c"),
        ("first \\boxed{1} last \\boxed{2}", "2"),
        ("\\boxed {7}", "7"),
        ("\\boxed{x", None),
        ("no box", None),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


HOSTILE = [
    None,
    12345,
    b"\\boxed{5}",
    "\\boxed{" * 2000,
    "}" * 500 + "\\boxed{\\frac{\\frac{\\frac{1}{",
    "\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 \\end{pmatrix}}",
    "\\boxed{\\undefinedmacro{x}{y}}",
    "\\boxed{" + "(" * 40 + "}",
    "\x00\x01\\boxed{\udcff}",
]


@pytest.mark.parametrize("response", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_unparseable_responses_score_zero_without_raising(response):
    verdict = judge(response, "5")
    assert verdict.correct is False
    assert math_reward(response, "5") == 0.0


def test_unparseable_ground_truth_scores_zero():
    verdict = judge("\\boxed{5}", "")
    assert (verdict.correct, verdict.error) == (False, "unparseable_ground_truth")
