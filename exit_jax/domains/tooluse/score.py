"""Score a trajectory of tool calls on one BFCL multi-turn task from the command line.

    python -m exit_jax.domains.tooluse.score --category multi_turn_base --task_id multi_turn_base_0
    --calls calls.json

``calls.json`` holds one list per user request, each a list of call strings, either Python calls as
in the BFCL ground truth (``"cd(folder='document')"``) or JSON tool calls (``"{\\"name\\": \\"cd\\",
\\"arguments\\": {...}}"``). ``--ground_truth`` scores the task's own ground-truth calls instead of
a file. Prints JSON: the reward, total return, first-turn correctness, the per-request results and
the state diff of the first failing request.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from exit_jax.domains.tooluse.bfcl_data import MULTI_TURN_CATEGORIES, category_of, load_task
from exit_jax.domains.tooluse.checker import score_trajectory


def _read_calls(path: str) -> list[list[str]]:
    try:
        data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"--calls: file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"--calls: {path} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, list) or not all(
        isinstance(turn, list) and all(isinstance(call, str) for call in turn) for turn in data
    ):
        raise SystemExit(f"--calls: {path} must hold a JSON list of per-request lists of call strings")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--category", default="multi_turn_base", choices=MULTI_TURN_CATEGORIES)
    parser.add_argument("--task_id", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--calls", help="JSON file: a list of per-request lists of call strings")
    source.add_argument("--ground_truth", action="store_true", help="score the task's ground-truth calls")
    parser.add_argument("--num_requests", type=int, default=None, help="evaluate only the first N requests")
    arguments = parser.parse_args(argv)
    if category_of(arguments.task_id) != arguments.category:
        raise SystemExit(f"--task_id {arguments.task_id!r} is not in --category {arguments.category}")
    try:
        task = load_task(arguments.task_id)
    except KeyError as error:
        raise SystemExit(str(error)) from None
    calls = [list(turn) for turn in task.ground_truth] if arguments.ground_truth else _read_calls(arguments.calls)
    result = score_trajectory(task, calls, num_requests=arguments.num_requests)
    json.dump({"task_id": task.task_id, **result.to_json()}, sys.stdout, indent=1, default=repr)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
