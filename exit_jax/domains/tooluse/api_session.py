"""A live set of BFCL simulated API objects for one task: execute calls, snapshot and diff their
state.

Calls go straight to the public methods of the API instances (no ``eval`` of model text). A call
that names an unknown function, has arguments that do not fit the schema (missing/unknown names,
wrong JSON types) or raises inside the API returns an error observation and changes nothing we did
not ask the API to change; it never raises.

Results are stringified as bfcl-eval's executor does (a ``str`` stays, a ``dict`` becomes JSON,
anything else ``str``) so that "the executed calls contain the ground-truth calls" can be decided on
execution results, as bfcl-eval does.
"""

from __future__ import annotations

import copy
import dataclasses
import decimal
import importlib
import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import mpmath

from exit_jax.domains.tooluse.bfcl_data import BfclTask, class_schemas

# JSON-schema type names used by the BFCL tool docs -> accepted Python types (int is a valid float;
# bool is not).
_SCHEMA_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One call as the policy (or a ground-truth string) asked for it, and what came back."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: str
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args), "kwargs": self.kwargs}


def _type_error(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    expected = schema.get("type")
    if expected is None or expected == "any" or expected not in _SCHEMA_TYPES:
        return None
    if isinstance(value, bool) and expected not in ("boolean",):
        return f"{where}: expected {expected}, got boolean"
    if not isinstance(value, _SCHEMA_TYPES[expected]):
        return f"{where}: expected {expected}, got {type(value).__name__}"
    if expected == "array" and "items" in schema:
        for position, item in enumerate(value):
            problem = _type_error(item, schema["items"], f"{where}[{position}]")
            if problem:
                return problem
    return None


class ApiSession:
    """The simulated API objects of one task, loaded with its initial configuration."""

    def __init__(self, task: BfclTask):
        from bfcl_eval.constants.executable_backend_config import (
            CLASS_FILE_PATH_MAPPING,
            STATELESS_CLASSES,
        )

        self.task = task
        self.instances: dict[str, Any] = {}
        self._methods: dict[str, tuple[str, Any]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        for class_name in task.involved_classes:
            api_class = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)
            instance = api_class()
            if class_name not in STATELESS_CLASSES:
                scenario = copy.deepcopy(task.initial_config.get(class_name, {}))
                instance._load_scenario(scenario, long_context=task.long_context)
            self.instances[class_name] = instance
            for method_name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not method_name.startswith("_"):
                    self._methods[method_name] = (class_name, method)
            for schema in class_schemas(class_name):
                self._schemas[schema["name"]] = schema

    def function_names(self) -> list[str]:
        return sorted(self._methods)

    def keyword_arguments(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments all by name (how a JSON tool call states them).

        Raises:
          KeyError: unknown function; TypeError: the arguments do not bind to its signature.
        """
        _, method = self._methods[name]
        return dict(inspect.signature(method).bind(*args, **kwargs).arguments)

    def check_arguments(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """Why the arguments do not fit the function's signature and schema, or None if they do."""
        _, method = self._methods[name]
        try:
            bound = inspect.signature(method).bind(*args, **kwargs)
        except TypeError as error:
            return f"invalid arguments for {name}: {error}"
        schema = self._schemas.get(name, {}).get("parameters", {}).get("properties", {})
        for argument, value in bound.arguments.items():
            if argument in schema:
                problem = _type_error(value, schema[argument], f"{name}.{argument}")
                if problem:
                    return f"invalid argument type for {problem}"
        return None

    def execute(self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> CallRecord:
        """Run one call; errors become an ``ok=False`` record whose result is the error text."""
        kwargs = dict(kwargs or {})
        args = tuple(args)
        if name not in self._methods:
            message = f"Error during execution: function {name!r} does not exist"
            return CallRecord(name, args, kwargs, message, False)
        problem = self.check_arguments(name, args, kwargs)
        if problem:
            return CallRecord(name, args, kwargs, f"Error during execution: {problem}", False)
        _, method = self._methods[name]
        saved_precision = _numeric_precision()
        try:
            result = method(*copy.deepcopy(args), **copy.deepcopy(kwargs))
            # Stringify while the call's own precision is in force: that is what its caller would
            # print.
            text = stringify_result(result)
        except Exception as error:  # noqa: BLE001 - an API error is an observation for the policy
            return CallRecord(name, args, kwargs, f"Error during execution: {error}", False)
        finally:
            _restore_numeric_precision(saved_precision)
        return CallRecord(name, args, kwargs, text, True)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Plain-data copy of every instance's public state, per class (private ``_`` attributes
        excluded)."""
        return {name: plain_state(instance) for name, instance in self.instances.items()}


def stringify_result(result: Any) -> str:
    """A call's return value as the observation text (bfcl-eval's convention)."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def plain_state(value: Any, _path: tuple[int, ...] = ()) -> Any:
    """Convert API state into plain comparable data.

    Objects become ``{"__class__": name, <public attributes>}``; a back-reference to an object
    already on the path (a directory's ``parent``) becomes ``"<ancestor ClassName>"`` so trees with
    parent links stay finite.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {key: plain_state(item, _path) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_state(item, _path) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((plain_state(item, _path) for item in value), key=repr)
    if hasattr(value, "__dict__"):
        if id(value) in _path:
            return f"<ancestor {type(value).__name__}>"
        inner = (*_path, id(value))
        attributes = {key: plain_state(item, inner) for key, item in vars(value).items() if not key.startswith("_")}
        return {"__class__": type(value).__name__, **attributes}
    return repr(value)


def state_diff(actual: Mapping[str, Any], expected: Mapping[str, Any], _where: str = "") -> list[dict[str, Any]]:
    """Leaf-level differences between two plain states: ``[{"path", "actual", "expected"}]`` (empty
    when equal)."""
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        differences = []
        for key in list(expected) + [key for key in actual if key not in expected]:
            where = f"{_where}.{key}" if _where else str(key)
            if key not in actual:
                differences.append({"path": where, "actual": "<missing>", "expected": _jsonable(expected[key])})
            elif key not in expected:
                differences.append({"path": where, "actual": _jsonable(actual[key]), "expected": "<missing>"})
            else:
                differences.extend(state_diff(actual[key], expected[key], where))
        return differences
    # Python equality, as bfcl-eval's state checker uses (so 1 == 1.0 and True == 1).
    if actual != expected:
        return [{"path": _where, "actual": _jsonable(actual), "expected": _jsonable(expected)}]
    return []


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def _numeric_precision() -> tuple[int, int]:
    # MathAPI sets mpmath's and decimal's *global* precision from a model-chosen argument; we put
    # both back after every call so one episode cannot change another's results (or math-verify's
    # sympy precision).
    return mpmath.mp.dps, decimal.getcontext().prec


def _restore_numeric_precision(saved: tuple[int, int]) -> None:
    mpmath.mp.dps, decimal.getcontext().prec = saved
