"""CLI: run one solution through the sandbox and grader, or list the competitions.

    python -m exit_jax.domains.mle.run_solution --competition hastie-auc --solution solution.py
    python -m exit_jax.domains.mle.run_solution --competition hastie-auc --solution spec.txt --format compact
    python -m exit_jax.domains.mle.run_solution --list

Prints one JSON object: valid, score, normalized_score, validation_score, feedback, error, runtime_s, isolation.
``--competition`` takes a built-in name or a competition directory (the ``competition.json`` layout or an
MLE-bench ``<id>/prepared`` directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exit_jax.domains.mle import builtin
from exit_jax.domains.mle.competition import load_user_competition
from exit_jax.domains.mle.domain import solution_code
from exit_jax.domains.mle.grading import Evaluator
from exit_jax.domains.mle.sandbox import Sandbox, SandboxLimits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--competition", help="built-in name or competition directory")
    parser.add_argument("--solution", help="solution.py, or a file holding a compact spec")
    parser.add_argument("--format", choices=("auto", "python", "compact"), default="auto")
    parser.add_argument("--timeout", type=float, default=300.0, help="wall-clock seconds (default 300)")
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--list", action="store_true", help="print the built-in competitions and their split")
    args = parser.parse_args(argv)
    if args.list:
        for spec in builtin.BUILTINS:
            print(json.dumps({"name": spec.name, "split": spec.split, "metric": spec.metric, "task": spec.task}))
        return 0
    if not args.competition or not args.solution:
        parser.error("--competition and --solution are required (or --list)")
    if Path(args.competition).is_dir():
        competition = load_user_competition(Path(args.competition))
    else:
        competition = builtin.get_competition(args.competition)
    text = Path(args.solution).read_text()
    solution_format = args.format
    if solution_format == "auto":
        solution_format = "python" if args.solution.endswith(".py") else "compact"
    if solution_format == "python" and "```" not in text:
        text = f"```python\n{text}\n```"
    try:
        code = solution_code(text, competition, solution_format)
    except ValueError as err:
        print(json.dumps({"valid": False, "score": None, "normalized_score": 0.0, "feedback": "",
                          "error": f"unparseable: {err}", "runtime_s": 0.0}))
        return 1
    limits = SandboxLimits(timeout_s=args.timeout, memory_mb=args.memory_mb)
    with Sandbox(workers=1, limits=limits) as sandbox:
        result = Evaluator(sandbox).evaluate(competition, code)
    print(json.dumps(result.to_json()))
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
