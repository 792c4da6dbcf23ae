"""Parsing the policy's actions and call strings.

An assistant turn holds exactly one action (notes §3.2):

- ``<tool>{"name": "cd", "arguments": {"folder": "document"}}</tool>``: one JSON tool call;
- ``<TASK_FINISHED>``: the current user request is done;
- ``<TASK_ERROR>``: the request cannot be completed.

The first action tag in the response wins; generation should stop at ``STOP_STRINGS`` and keep the
stop string in the returned text (a ``<tool>`` with no ``</tool>`` is treated as truncated, i.e. no
valid action). Ground-truth calls are Python call strings (``mv(source='a', destination='b')``);
they are parsed with ``ast`` and literal evaluation only.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from typing import Any, Literal

TOOL_OPEN, TOOL_CLOSE = "<tool>", "</tool>"
TASK_FINISHED, TASK_ERROR = "<TASK_FINISHED>", "<TASK_ERROR>"
STOP_STRINGS = (TOOL_CLOSE, TASK_FINISHED, TASK_ERROR)

ActionKind = Literal["tool", "finished", "error", "none"]


@dataclasses.dataclass(frozen=True)
class Action:
    """The action found in a response: its kind and, for a tool call, the text between the tags."""

    kind: ActionKind
    payload: str = ""


@dataclasses.dataclass(frozen=True)
class ParsedCall:
    """A call to execute: function name, positional and keyword arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def parse_action(response: str) -> Action:
    """The first action in a response (kind "none" when there is no complete one)."""
    if not isinstance(response, str):
        return Action("none")
    positions = {
        kind: response.find(tag)
        for kind, tag in (("tool", TOOL_OPEN), ("finished", TASK_FINISHED), ("error", TASK_ERROR))
    }
    found = {kind: position for kind, position in positions.items() if position >= 0}
    if not found:
        return Action("none")
    kind = min(found, key=found.get)
    if kind != "tool":
        return Action(kind)
    start = found["tool"] + len(TOOL_OPEN)
    end = response.find(TOOL_CLOSE, start)
    if end < 0:
        return Action("none")
    return Action("tool", response[start:end].strip())


def parse_json_call(payload: str) -> ParsedCall:
    """Parse ``{"name": ..., "arguments": {...}}`` (``parameters`` is accepted for ``arguments``).

    Raises:
      ValueError: with a message fit to show the policy, when the payload is not such an object.
    """
    try:
        value = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"tool call is not valid JSON: {error}") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError('tool call must be a JSON object {"name": <function>, "arguments": {...}}')
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f"tool call arguments are not valid JSON: {error}") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError("tool call arguments must be a JSON object of named arguments")
    return ParsedCall(value["name"], (), dict(arguments))


def parse_python_call(text: str) -> ParsedCall:
    """Parse a Python call string with literal arguments, e.g. ``sort('a.txt')`` or
    ``cd(folder='x')``.

    Raises:
      ValueError: when the text is not a single call of a plain name with literal arguments.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"not a Python call: {error.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a call of a plain function name: {text!r}")
    try:
        args = tuple(ast.literal_eval(argument) for argument in node.args)
        kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in node.keywords}
    except (ValueError, TypeError, SyntaxError, RecursionError) as error:
        raise ValueError(f"call arguments must be literals: {error}") from None
    if None in kwargs:
        raise ValueError("**kwargs expansion is not allowed in a call")
    return ParsedCall(node.func.id, args, kwargs)


def parse_call_string(text: str) -> ParsedCall:
    """A call given either as JSON (``{"name": ...}``) or as a Python call string."""
    stripped = text.strip()
    if stripped.startswith(TOOL_OPEN):
        action = parse_action(stripped)
        stripped = action.payload
    if stripped.startswith("{"):
        return parse_json_call(stripped)
    return parse_python_call(stripped)


def format_python_call(name: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> str:
    """The Python call string of a call (the form bfcl-eval's checker executes)."""
    parts = [repr(argument) for argument in args]
    parts += [f"{key}={value!r}" for key, value in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def format_tool_action(name: str, kwargs: dict[str, Any]) -> str:
    """The assistant text of one tool call in the environment's format."""
    return f"{TOOL_OPEN}{json.dumps({'name': name, 'arguments': kwargs})}{TOOL_CLOSE}"
