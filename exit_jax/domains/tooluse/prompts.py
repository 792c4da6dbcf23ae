"""Tool-use prompts: the system prompt with the tool schemas, and the self-iteration user message
(Appendix D).

The environment follows the paper (after Zhuang et al. 2025): tool signatures as JSON schemas in the
system prompt; each assistant turn is one ``<tool>`` JSON call, ``<TASK_FINISHED>`` or
``<TASK_ERROR>``. Self-iteration uses the shared improve / diverge templates
(``exit_jax.domains.math.prompts``, notes §3.4), placed after the message history that precedes the
turn, with the turn's user request as ``{instruction}`` and the previous assistant output as
``{previous_response}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from exit_jax.domains.math.prompts import DIVERGE_TEMPLATE, IMPROVE_TEMPLATE
from exit_jax.domains.tooluse.calls import TASK_ERROR, TASK_FINISHED, TOOL_CLOSE, TOOL_OPEN

_CALL_FORMAT = '{"name": "<function name>", "arguments": {"<argument>": <value>}}'
SYSTEM_PROMPT = (
    "You are an assistant that completes user requests by calling functions (tools).\n"
    "The available functions are described by the JSON schemas below.\n"
    "\n"
    "Answer every turn with exactly one of:\n"
    f"- one function call as a JSON object inside tags: {TOOL_OPEN}{_CALL_FORMAT}{TOOL_CLOSE}\n"
    f"- {TASK_FINISHED} when the current user request has been completed;\n"
    f"- {TASK_ERROR} when the current user request cannot be completed.\n"
    "You may think briefly before the action. "
    "The result of each call is returned to you in the next message.\n"
    "\n"
    "Available functions:\n"
    "{schemas}"
)


def schema_text(schemas: Sequence[dict[str, Any]], include_response: bool = False) -> str:
    """One JSON schema per line (the ``response`` part is left out unless asked for: it only costs
    context)."""
    lines = []
    for schema in schemas:
        shown = {key: value for key, value in schema.items() if include_response or key != "response"}
        lines.append(json.dumps(shown, ensure_ascii=False))
    return "\n".join(lines)


def system_prompt(schemas: Sequence[dict[str, Any]], include_response: bool = False) -> str:
    return SYSTEM_PROMPT.replace("{schemas}", schema_text(schemas, include_response))


def self_iteration_message(request: str, previous_response: str, mode: str) -> str:
    """The user message asking to improve (or diverge from) the previous response to ``request``."""
    template = DIVERGE_TEMPLATE if mode == "diverge" else IMPROVE_TEMPLATE
    return template.format(instruction=request, previous_response=previous_response)
