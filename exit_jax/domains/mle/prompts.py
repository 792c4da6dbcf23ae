"""Prompts for the MLE domain: the paper's MLE template (Appendix B / notes §3.4) and a compact policy variant.

The full template, in the paper's order: persona; "Study the current version of solution.py" with the code and
``{debug_info}``; the goal preamble selecting improve / debug / diverge; the task description; previews of the public
files; instructions; constraints; the response format. Feedback shown to the policy is the previous run's own output
(its printed validation score) or its crash trace, never anything computed from the private answers.

The compact variant is for the small embedded policy that writes one-line specs (``spec.py``): competition, metric,
data shape, the mode word, the previous spec and its own validation score, then ``spec:`` (write a full spec) or
``edit:`` (improve / debug of a valid spec: write the ``key=value`` tokens to change).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from exit_jax.domains.mle.competition import Competition

PERSONA = (
    "You are a Kaggle grandmaster attending a competition. You are a world-class machine learning engineer and "
    "your goal is to achieve the highest medal: write a solution whose test score beats every other competitor."
)
GOAL_PREAMBLES = {
    "base": "Your goal is to improve this python script to better achieve the following task:",
    "improve": "Your goal is to improve this python script to better achieve the following task:",
    "debug": "Your goal is to debug this python script, so that it best achieves the following task:",
    "diverge": (
        "Your goal is to propose a new python script that improves over this python script for the following task. "
        "Your improved script should take a radically different approach to solving the problem than the one taken "
        "by the current python script."
    ),
}
STARTING_CODE = '''import os

import pandas as pd

# The competition's public files (train.csv, test.csv, sample_submission.csv) are in the directory named by the
# environment variable PUBLIC_RESOURCE_PATH. Write submission.csv to the current working directory.
DATA_DIR = os.environ["PUBLIC_RESOURCE_PATH"]


def main():
    pass


if __name__ == "__main__":
    main()
'''
INSTRUCTIONS = """- Load the training and test data from the directory given by the environment variable
  PUBLIC_RESOURCE_PATH.
- Include any training and evaluation logic you need (e.g. a hold-out split or k-fold cross-validation on train.csv)
  and print your validation score as a line `validation_score: <float>` (same metric as the competition).
- Write the predictions for test.csv to `submission.csv` in the current directory, formatted like
  sample_submission.csv."""
CONSTRAINTS = """- Do not write any files other than submission.csv.
- Define all functions before `if __name__ == '__main__':`.
- Your code will be run on a CPU machine with no internet access, a 5-minute time limit, and numpy, pandas,
  scipy and scikit-learn installed."""
RESPONSE_FORMAT = ("Respond with your full working python program, which will be saved as solution.py, inside "
                   "triple-tick delimiters (```python ... ```).")


@functools.lru_cache(maxsize=256)
def preview_files(public_dir: Path, lines: int = 4, width: int = 240) -> str:
    """Each public CSV's row count and first lines (long lines cut to ``width`` characters)."""
    parts = []
    for path in sorted(Path(public_dir).glob("*.csv")):
        with open(path) as handle:
            head = [next(handle, "").rstrip("\n")[:width] for _ in range(lines + 1)]
        with open(path) as handle:
            rows = sum(1 for _ in handle) - 1
        parts.append(f"## {path.name} ({rows} rows)\n```\n" + "\n".join(h for h in head if h) + "\n```")
    return "\n\n".join(parts)


def extract_python(response: str) -> str | None:
    """The code of the response's last ```python fence (or last bare fence); None when there is none."""
    blocks = re.findall(r"```(?:python|py)?[ \t]*\n(.*?)```", response, flags=re.S)
    return blocks[-1] if blocks else None


def python_prompt(competition: Competition, mode: str, previous_code: str | None, feedback: str | None) -> str:
    """The paper's MLE template for one instance. ``mode`` is base / improve / debug / diverge."""
    code = previous_code if previous_code else STARTING_CODE
    if mode == "debug":
        debug_info = f"It failed with this error:\n```\n{feedback or 'unknown error'}\n```\n"
    elif feedback:
        debug_info = f"Its output when it last ran:\n```\n{feedback}\n```\n"
    else:
        debug_info = ""
    return (
        f"{PERSONA}\n\nStudy the current version of solution.py:\n```python\n{code.rstrip()}\n```\n{debug_info}\n"
        f"{GOAL_PREAMBLES[mode]}\n\n# Task description\n{competition.description.strip()}\n\n"
        f"# Previews of files located at PUBLIC_RESOURCE_PATH:\n{preview_files(competition.public_dir)}\n\n"
        f"# Instructions\n{INSTRUCTIONS}\n\n# Constraints\n{CONSTRAINTS}\n\n{RESPONSE_FORMAT}\n"
    )


def _data_summary(competition: Competition) -> str:
    return _summary(competition.public_dir, competition.id_column)


@functools.lru_cache(maxsize=256)
def _summary(public_dir: Path, id_column: str) -> str:
    import pandas as pd

    train = pd.read_csv(public_dir / "train.csv", nrows=2000)
    test_columns = pd.read_csv(public_dir / "test.csv", nrows=0).columns
    features = [c for c in test_columns if c != id_column]
    categorical = sum(train[c].dtype == object for c in features)
    missing = "yes" if train[features].isna().any().any() else "no"
    return f"feats={len(features) - categorical}num+{categorical}cat miss={missing}"


def compact_prompt(competition: Competition, mode: str, previous_spec: str | None, feedback: str | None,
                   edit: bool = False) -> str:
    """A short prompt for the embedded policy: who, what, mode word, previous spec and its own validation score.

    The last line asks for a full spec (``spec:``) or, with ``edit``, an edit of the previous one (``edit:``).
    """
    lines = [f"task {competition.name} metric={competition.metric} {_data_summary(competition)}",
             f"mode {'new' if mode == 'base' else mode}"]
    if previous_spec:
        lines.append(f"prev {previous_spec}")
    if feedback:
        lines.append(f"fb {feedback}")
    lines.append("edit:" if edit else "spec:")
    return "\n".join(lines)
