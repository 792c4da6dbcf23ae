"""BFCL multi-turn tasks, ground truth and tool schemas, read from the installed ``bfcl-eval``
package.

Where they live inside the package (bfcl-eval 2026.3.23, the pinned version in
requirements-bfcl.txt):

- tasks: ``bfcl_eval/data/BFCL_v4_<category>.json`` (JSON lines: id, question = per-request message
  lists,
  initial_config, involved_classes, ...);
- ground truth: ``bfcl_eval/data/possible_answer/BFCL_v4_<category>.json`` (id, ground_truth =
  per-request lists of
  Python call strings);
- tool schemas: ``bfcl_eval/data/multi_turn_func_doc/<file>.json``, file per class from
  ``bfcl_eval.constants.executable_backend_config.MULTI_TURN_FUNC_DOC_FILE_MAPPING``;
- simulated APIs: ``bfcl_eval.eval_checker.multi_turn_eval.func_source_code.*`` (GorillaFileSystem,
  TradingBot,
  TravelAPI, VehicleControlAPI, MessageAPI, TwitterAPI, TicketAPI, MathAPI), module per class from
  ``CLASS_FILE_PATH_MAPPING``.

Install with ``pip install --no-deps -r requirements-bfcl.txt``: the package pins old versions of
heavy libraries it does not need for these files.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import pathlib
from typing import Any

MULTI_TURN_CATEGORIES = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)
DATA_VERSION_PREFIX = "BFCL_v4_"
INSTALL_HINT = "install it with: pip install --no-deps -r requirements-bfcl.txt"


@dataclasses.dataclass(frozen=True)
class BfclTask:
    """One multi-turn task.

    Attributes:
      task_id: e.g. "multi_turn_base_0".
      category: e.g. "multi_turn_base".
      requests: per user request, its messages (role/content dicts).
      ground_truth: per user request, the ground-truth Python call strings.
      initial_config: per class, the scenario it is loaded with.
      involved_classes: API class names.
      missed_function: for miss_func tasks, request index -> function names withheld before that
      request.
    """

    task_id: str
    category: str
    requests: tuple[tuple[dict[str, str], ...], ...]
    ground_truth: tuple[tuple[str, ...], ...]
    initial_config: dict[str, Any]
    involved_classes: tuple[str, ...]
    missed_function: dict[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category


def package_root() -> pathlib.Path:
    """Folder of the installed ``bfcl_eval`` package."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"bfcl-eval is not installed; {INSTALL_HINT}")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def data_dir() -> pathlib.Path:
    return package_root() / "data"


def _read_json_lines(path: pathlib.Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is bfcl-eval complete? {INSTALL_HINT}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@functools.cache
def load_tasks(category: str) -> dict[str, BfclTask]:
    """All tasks of a multi-turn category, keyed by id, in file order."""
    if category not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {category!r}; choose from {MULTI_TURN_CATEGORIES}")
    file_name = f"{DATA_VERSION_PREFIX}{category}.json"
    entries = _read_json_lines(data_dir() / file_name)
    answers = {row["id"]: row["ground_truth"] for row in _read_json_lines(data_dir() / "possible_answer" / file_name)}
    tasks = {}
    for entry in entries:
        task_id = entry["id"]
        missed = {int(turn): tuple(names) for turn, names in entry.get("missed_function", {}).items()}
        tasks[task_id] = BfclTask(
            task_id=task_id,
            category=category,
            requests=tuple(tuple(message) for message in entry["question"]),
            ground_truth=tuple(tuple(calls) for calls in answers[task_id]),
            initial_config=entry["initial_config"],
            involved_classes=tuple(entry["involved_classes"]),
            missed_function=missed,
        )
    return tasks


def category_of(task_id: str) -> str:
    """``multi_turn_base_12`` -> ``multi_turn_base``."""
    return task_id.rsplit("_", 1)[0]


def load_task(task_id: str) -> BfclTask:
    category = category_of(task_id)
    tasks = load_tasks(category)
    if task_id not in tasks:
        raise KeyError(f"unknown BFCL task id {task_id!r} in category {category}")
    return tasks[task_id]


@functools.cache
def class_schemas(class_name: str) -> tuple[dict[str, Any], ...]:
    """The JSON tool schemas of one API class, as shipped by bfcl-eval."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    if class_name not in MULTI_TURN_FUNC_DOC_FILE_MAPPING:
        raise KeyError(f"no tool schemas for class {class_name!r}")
    path = data_dir() / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]
    return tuple(_read_json_lines(path))


def task_schemas(task: BfclTask, request_index: int) -> list[dict[str, Any]]:
    """Schemas visible at a request: every function of the involved classes, less those still
    withheld (miss_func tasks withhold a function until the request that introduces it)."""
    withheld = {name for turn, names in task.missed_function.items() if turn > request_index for name in names}
    return [
        schema
        for class_name in task.involved_classes
        for schema in class_schemas(class_name)
        if schema["name"] not in withheld
    ]
