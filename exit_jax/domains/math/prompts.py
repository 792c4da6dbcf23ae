"""Math prompts: the paper's request, self-improve and self-diverge templates, and a compact
variant.

"chat" is for instruction-tuned models and reproduces the Appendix B templates (notes §3.4) word for
word, with the base request as ``{instruction}``. "compact" is for the tiny embedded policy (a
few-million-parameter model with a ~4k-token vocabulary): the same three modes in a handful of
tokens each.
"""

from __future__ import annotations

from exit_jax.types import Instance, Message

PROMPT_STYLES = ("chat", "compact")

CHAT_REQUEST = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."

IMPROVE_TEMPLATE = """Improve your current response to this request:

## Request:
{instruction}

## Current response:
{previous_response}"""

DIVERGE_TEMPLATE = (
    "Consider your current response to this request, and provide another response that takes\n"
    """an approach that SIGNIFICANTLY DIFFERS from the approach of the current response.

## Request:
{instruction}

## Current response:
{previous_response}

## Your new response format:
- First, provide a brief summary of the approach in the current response above.
- Next, state a meaningfully different approach that can be taken instead.
- Finally, provide your new response using this different approach."""
)

COMPACT_REQUEST = "Q: {problem}\nA:"
COMPACT_IMPROVE = "Q: {problem}\nWas: {previous_response}\nFix. A:"
COMPACT_DIVERGE = "Q: {problem}\nWas: {previous_response}\nNew way. A:"


def render_math_prompt(problem: str, instance: Instance, style: str) -> list[Message]:
    """The chat messages for a math instance.

    Args:
      problem: the problem statement.
      instance: the instance; ``mode`` picks the template ("base" when there is no previous
      response).
      style: "chat" (paper templates) or "compact" (tiny policy).
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {style!r}")
    mode = instance.mode if instance.previous_response is not None else "base"
    if style == "compact":
        if mode == "base":
            return [Message("user", COMPACT_REQUEST.format(problem=problem))]
        template = COMPACT_DIVERGE if mode == "diverge" else COMPACT_IMPROVE
        text = template.format(problem=problem, previous_response=instance.previous_response)
        return [Message("user", text)]
    instruction = CHAT_REQUEST.format(problem=problem)
    if mode == "base":
        return [Message("user", instruction)]
    template = DIVERGE_TEMPLATE if mode == "diverge" else IMPROVE_TEMPLATE
    text = template.format(instruction=instruction, previous_response=instance.previous_response)
    return [Message("user", text)]
