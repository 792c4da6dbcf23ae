"""The MLE domain: competitions as tasks, solutions (python or compact spec) graded in the sandbox.

Implements ``exit_jax.types.Domain``. Rewards follow the paper (notes §1.4): improve steps get
r_imp = max(0, (r_k - r_{k-1}) / (1 - r_{k-1})) of normalised scores; base, diverge and debug steps (the previous
iterate crashed) get the normalised score. A response that is not parseable (no python fence, a bad spec) is invalid
with reward 0. The child instance carries the response (compact format: the full spec it stands for, since improve
and debug steps answer with an edit of the previous spec, see ``compact_spec``), its own printed output as feedback (or
the crash trace, which makes the child a debug step) and the normalised score for the next r_imp, which stays out of
prompts.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from exit_jax.domains.mle import builtin, prompts, spec
from exit_jax.domains.mle.competition import Competition, load_user_competitions
from exit_jax.domains.mle.grading import Evaluator, SolutionResult, failure_signature
from exit_jax.domains.mle.sandbox import Sandbox, SandboxError, SandboxLimits
from exit_jax.types import Episode, Grade, Instance, Message, PolicyFn, improvement_reward, single_turn_rollout

FORMATS = ("python", "compact")

# The start-up check's known-good solution: it imports what solutions commonly use, submodules the sandbox's fork
# server does not pre-import among them (so a sandbox that hides part of the interpreter fails here), fits a model
# and writes the sample submission back (valid for every competition).
REFERENCE_SOLUTION = """
import os
import numpy as np
import pandas as pd
import scipy.optimize
import scipy.sparse
import sklearn.decomposition
import sklearn.feature_extraction.text
import sklearn.tree
public = os.environ["PUBLIC_RESOURCE_PATH"]
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 3))
sklearn.tree.DecisionTreeRegressor(max_depth=2).fit(x, x[:, 0]).predict(x)
sklearn.decomposition.PCA(2).fit(x)
pd.read_csv(os.path.join(public, {sample!r})).to_csv("submission.csv", index=False)
print("validation_score: 0")
"""


def weak_isolation(isolation: dict) -> list[str]:
    """The parts of full isolation a sandbox's ``isolation`` report lacks (empty when fully isolated)."""
    missing = [name for name in ("uid_drop", "network_namespace", "pid_namespace", "private_tmp")
               if not isolation.get(name)]
    missing += [f"{c}_cgroup" for c in ("memory", "pids") if c not in isolation.get("cgroups", [])]
    return missing


def names_tuple(value: object, field: str) -> tuple[str, ...]:
    """A config list of paths or names as a tuple; a string (as a command line gives it) is split at commas."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of strings (or one comma-separated string), got {value!r}")
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class MLEConfig:
    """Domain configuration.

    Attributes:
      solution_format: "python" (solution.py in a ```python fence) or "compact" (one-line spec).
      limits: sandbox limits per solution.
      workers: sandbox pool size (None: the number of cores).
      competition_dirs: the user's own competitions: directories each holding one competition (the
        ``competition.json`` layout, or MLE-bench's ``<id>/prepared/{public,private}``) or several (a directory of
        such directories, e.g. MLE-bench's data root). They are only read; derived metadata and a private copy of the
        answers live in ``$EXIT_JAX_CACHE/mle/user/`` (``competition.load_user_competitions``).
      builtin_competitions: include the 19 built-in competitions (False: only the user's).
      heldout_competitions: names of user competitions that form the held-out split, all others being train; empty:
        each competition's own split (its competition.json's "split", an MLE-bench preset's Table 3 split,
        "heldout" for other MLE-bench competitions).
      extra_competitions: the older name of ``competition_dirs`` (both are read).
      feedback_chars: how much of a run's output the next prompt shows.
      allow_weak_sandbox: run even when the sandbox falls short of full isolation (uid drop, network, PID and
        mount namespaces, memory and pids cgroups); without it such a run refuses to start.
      max_failed_batches: stop after this many consecutive graded batches in which every solution failed the same
        way (one exception type and message: an environment failure, not the policy's); 0 never stops.
    """

    solution_format: str = "python"
    limits: SandboxLimits = SandboxLimits()
    workers: int | None = None
    competition_dirs: tuple[str, ...] = ()
    builtin_competitions: bool = True
    heldout_competitions: tuple[str, ...] = ()
    extra_competitions: tuple[str, ...] = ()
    feedback_chars: int = 2000
    allow_weak_sandbox: bool = False
    max_failed_batches: int = 3

    def __post_init__(self) -> None:
        for name in ("competition_dirs", "heldout_competitions", "extra_competitions"):
            object.__setattr__(self, name, names_tuple(getattr(self, name), f"domain.{name}"))
        if not isinstance(self.builtin_competitions, bool):
            raise ValueError(f"domain.builtin_competitions must be True or False, got {self.builtin_competitions!r}")
        if self.solution_format not in FORMATS:
            raise ValueError(f"MLEConfig.solution_format must be one of {FORMATS}, got {self.solution_format!r}")
        if self.max_failed_batches < 0:
            raise ValueError(f"domain.max_failed_batches = {self.max_failed_batches}: must be >= 0 (0: never stop)")


def edited_spec(mode: str, previous: str | None) -> dict[str, object] | None:
    """The previous spec an improve / debug step edits, or None when the step writes a full spec (base and diverge
    steps, and steps whose previous answer was not a valid spec)."""
    if mode not in ("improve", "debug") or not previous:
        return None
    try:
        return spec.parse_spec(spec.extract_spec(previous))
    except spec.SpecError:
        return None


def compact_spec(response: str, mode: str = "base", previous: str | None = None) -> dict[str, object]:
    """The full spec a compact-format response stands for.

    Improve and debug steps whose previous solution is a valid spec answer with an edit (``spec.parse_patch``)
    applied to it (``edited_spec``); other steps answer with a full spec.

    Raises:
      spec.SpecError: the response holds no valid spec / edit.
    """
    base = edited_spec(mode, previous)
    if base is None:
        return spec.parse_spec(spec.extract_spec(response))
    return spec.apply_patch(base, spec.parse_patch(spec.extract_patch(response)))


def solution_code(response: str, competition: Competition, solution_format: str, mode: str = "base",
                  previous: str | None = None) -> str:
    """The solution.py source of a response (``mode`` / ``previous``: see ``compact_spec``).

    Raises:
      ValueError (``spec.SpecError`` for compact specs): nothing runnable in the response.
    """
    if solution_format == "python":
        code = prompts.extract_python(response)
        if code is None or not code.strip():
            raise ValueError("no ```python fenced code in the response")
        return code
    return spec.compile_spec(compact_spec(response, mode, previous), competition.metric, competition.task,
                             competition.id_column, competition.target_columns)


def validation_is_better(metric: str, candidate: float, incumbent: float) -> bool:
    """Whether a validation score beats another under the metric's direction."""
    return candidate > incumbent if metric in ("auc", "accuracy") else candidate < incumbent


class MLEDomain:
    """Kaggle-style competitions graded by running the solution in the sandbox."""

    name = "mle"
    multi_turn = False

    def __init__(self, config: MLEConfig | None = None, sandbox: Sandbox | None = None):
        self.config = config or MLEConfig()
        self._sandbox = sandbox
        self._evaluator: Evaluator | None = None
        self._background: ThreadPoolExecutor | None = None
        self._user = self._load_user_competitions()
        self._failed_batches: list[str] = []  # the common failure of each consecutive all-failed batch

    def check_environment(self) -> dict:
        """Before a run trains or evaluates: the sandbox's isolation is what this platform allows and a known-good
        solution runs valid through it. Returns what is recorded with the run ({"sandbox": isolation}).

        Raises:
          SandboxError: weaker isolation than full without ``allow_weak_sandbox``, or the reference solution
            failed (its error and trace in the message).
        """
        isolation = dict(self.evaluator.sandbox.isolation)
        missing = weak_isolation(isolation)
        if missing and not self.config.allow_weak_sandbox:
            why = [isolation.get("mode", "")] + ([isolation["cgroup_note"]] if "cgroup_note" in isolation else [])
            raise SandboxError(
                f"the MLE sandbox here lacks {', '.join(missing)} ({'; '.join(w for w in why if w)}). Solutions "
                "would run with weaker isolation than training on untrusted code needs: run as root on a host with "
                "namespaces and writable memory/pids cgroups, or pass --config.domain.allow_weak_sandbox=True to "
                "accept it (recorded in metrics.jsonl, report.md and every evaluation).")
        if missing:
            print(f"WARNING: the MLE sandbox runs without {', '.join(missing)} (domain.allow_weak_sandbox=True)",
                  file=sys.stderr)
        task_ids = self.task_ids("train") or self.task_ids("heldout")
        competition = self.competition(task_ids[0])
        result = self.evaluator.evaluate(competition, REFERENCE_SOLUTION.format(sample=competition.sample_submission))
        if not result.valid:
            raise SandboxError(
                f"the MLE sandbox cannot run a known-good solution on {competition.name} with {sys.executable} "
                f"({result.error}): every solution would fail the same way. Its output:\n"
                f"{result.feedback.strip()[-1500:]}")
        return {"sandbox": {**isolation, "full_isolation": not missing, "missing": missing}}
    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            if self._sandbox is None:
                self._sandbox = Sandbox(workers=self.config.workers, limits=self.config.limits)
            self._evaluator = Evaluator(self._sandbox)
        return self._evaluator

    def _load_user_competitions(self) -> dict[str, Competition]:
        """The user's competitions (``competition_dirs`` and its alias ``extra_competitions``) with their splits.

        Raises:
          ValueError / FileNotFoundError: a bad directory or file, a name taken twice or by a built-in, an unknown
            name in ``heldout_competitions``, or (``builtin_competitions=False``) an empty split; each message names
            the field and what to do.
        """
        config = self.config
        directories = list(dict.fromkeys(config.competition_dirs + config.extra_competitions))
        field = "domain.competition_dirs" if config.competition_dirs else "domain.extra_competitions"
        user = {c.name: c for c in load_user_competitions(directories, field)}
        if config.builtin_competitions:
            taken = sorted(set(user) & set(builtin.builtin_names()))
            if taken:
                raise ValueError(f"{field}: {', '.join(taken)} is also a built-in competition's name; rename it "
                                 "('name' in its competition.json) or set domain.builtin_competitions=False")
        if config.heldout_competitions:
            unknown = [n for n in config.heldout_competitions if n not in user]
            if unknown:
                builtins_named = [n for n in unknown if n in builtin.builtin_names()]
                raise ValueError(
                    f"domain.heldout_competitions: {', '.join(unknown)} is not a user competition"
                    + (f" ({', '.join(builtins_named)}: a built-in, whose split is fixed)" if builtins_named else "")
                    + f"; the user competitions ({field}) are: {', '.join(sorted(user)) or 'none'}")
            held = set(config.heldout_competitions)
            user = {n: dataclasses.replace(c, split="heldout" if n in held else "train") for n, c in user.items()}
        if not config.builtin_competitions:
            if not user:
                raise ValueError("domain.builtin_competitions=False but no user competition is configured: list "
                                 "directories in domain.competition_dirs")
            for split in ("train", "heldout"):
                if not any(c.split == split for c in user.values()):
                    raise ValueError(
                        f"domain.builtin_competitions=False and no user competition is in the {split!r} split "
                        f"(splits: {', '.join(f'{n}={c.split}' for n, c in sorted(user.items()))}); name the "
                        "held-out ones in domain.heldout_competitions (the others train), or keep the built-ins")
        return user

    def competition(self, task_id: str) -> Competition:
        if task_id in self._user:
            return self._user[task_id]
        if not self.config.builtin_competitions:
            raise KeyError(f"unknown competition {task_id!r}; domain.builtin_competitions=False and the user "
                           f"competitions are: {', '.join(sorted(self._user))}")
        return builtin.get_competition(task_id)

    def task_ids(self, split: str) -> list[str]:
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        user = [c.name for c in self._user.values() if c.split == split]
        return (builtin.builtin_names(split) if self.config.builtin_competitions else []) + user

    def base_instance(self, task_id: str) -> Instance:
        return Instance(task_id=task_id)

    def _previous_solution(self, instance: Instance) -> str | None:
        if instance.previous_response is None:
            return None
        if self.config.solution_format == "python":
            return prompts.extract_python(instance.previous_response) or instance.previous_response
        try:
            return spec.format_spec(spec.parse_spec(spec.extract_spec(instance.previous_response)))
        except spec.SpecError:
            return instance.previous_response.strip().splitlines()[0][:200] if instance.previous_response else None

    def render(self, instance: Instance) -> list[Message]:
        competition = self.competition(instance.task_id)
        previous = self._previous_solution(instance)
        if self.config.solution_format == "python":
            text = prompts.python_prompt(competition, instance.mode, previous, instance.feedback)
        else:
            text = prompts.compact_prompt(competition, instance.mode, previous, instance.feedback,
                                          edit=edited_spec(instance.mode, instance.previous_response) is not None)
        return [Message("user", text)]

    def _reward(self, instance: Instance, normalized: float) -> float:
        if instance.mode == "improve":
            return improvement_reward(normalized, instance.previous_score or 0.0)
        return normalized

    def grade(self, instances: Sequence[Instance], responses: Sequence[str]) -> list[Grade]:
        """Grade responses in parallel on the sandbox pool."""
        competitions = [self.competition(inst.task_id) for inst in instances]
        runnable, codes, grades = [], [], [None] * len(instances)
        for index, (competition, response) in enumerate(zip(competitions, responses, strict=True)):
            try:
                codes.append(solution_code(response, competition, self.config.solution_format,
                                           instances[index].mode, instances[index].previous_response))
                runnable.append(index)
            except ValueError as err:
                grades[index] = Grade(reward=0.0, score=0.0, valid=False, feedback=f"[unparseable] {err}",
                                      error="unparseable")
        results = self.evaluator.evaluate_many([competitions[i] for i in runnable], codes)
        for index, result in zip(runnable, results, strict=True):
            grades[index] = self._to_grade(instances[index], result)
        self._watch_common_failure(results)
        return grades

    def _watch_common_failure(self, results: Sequence[SolutionResult]) -> None:
        """Report a batch whose solutions all failed the same way; stop after ``max_failed_batches`` in a row."""
        signatures = {failure_signature(result) for result in results}
        if len(results) < 2 or len(signatures) != 1 or None in signatures:
            self._failed_batches = []
            return
        common = signatures.pop()
        if self._failed_batches and self._failed_batches[-1] != common:
            self._failed_batches = []
        self._failed_batches.append(common)
        limit = self.config.max_failed_batches
        print(f"WARNING: all {len(results)} solutions of this batch failed with {common!r} "
              f"({len(self._failed_batches)} such batch(es) in a row"
              + (f"; the run stops at {limit})" if limit else ")"), file=sys.stderr)
        if limit and len(self._failed_batches) >= limit:
            raise SandboxError(
                f"every solution of {limit} consecutive batches failed with {common!r}: an environment failure "
                f"rather than the policy's (last trace below). Fix the environment, or raise "
                f"domain.max_failed_batches (0: never stop).\n{results[-1].feedback.strip()[-1500:]}")

    def submit_grade(self, instances: Sequence[Instance], responses: Sequence[str]) -> Future:
        """Start grading in the background; the trainer collects ``future.result()`` when it needs the rewards."""
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="mle-grade")
        return self._background.submit(self.grade, list(instances), list(responses))

    def _to_grade(self, instance: Instance, result: SolutionResult) -> Grade:
        if self.config.solution_format == "compact":
            feedback = (f"val={result.validation_score:.4g}" if result.valid and result.validation_score is not None
                        else f"error={result.error}")
        else:
            feedback = result.feedback[-self.config.feedback_chars:]
        return Grade(
            reward=self._reward(instance, result.normalized_score), score=result.normalized_score,
            valid=result.valid, feedback=feedback, error=result.error,
            info={"raw_score": result.score, "validation_score": result.validation_score,
                  "runtime_s": result.runtime_s, "isolation": result.isolation})

    def _child_solution(self, instance: Instance, response: str) -> str:
        """What the next step sees as the current solution: for compact specs the full spec the response stands
        for (an edit applied), or, when the edit does not parse, the unchanged previous spec; else the response."""
        if self.config.solution_format != "compact":
            return response
        try:
            return spec.format_spec(compact_spec(response, instance.mode, instance.previous_response))
        except spec.SpecError:
            editable = edited_spec(instance.mode, instance.previous_response) is not None
            return instance.previous_response if editable else response

    def child(self, instance: Instance, response: str, grade: Grade) -> Instance:
        return Instance(
            task_id=instance.task_id, iterate=instance.iterate + 1,
            previous_response=self._child_solution(instance, response),
            feedback=grade.feedback, previous_score=grade.score, mode="improve" if grade.valid else "debug",
            depth=instance.depth + 1)

    def rollout(self, instances: Sequence[Instance], policy_fn: PolicyFn) -> list[Episode]:
        return single_turn_rollout(self, instances, policy_fn)

    # ------------------------------------------------------------------ trainer / evaluation hooks
    def demonstrations(self, count: int, rng) -> list[tuple[Instance, str]]:
        """Warm-start pairs for the compact format (training competitions only; see demonstrations.py)."""
        from exit_jax.domains.mle.demonstrations import demonstrations

        if self.config.solution_format != "compact":
            return []
        return demonstrations(self.task_ids("train"), count, rng)

    def evaluation_chain(self, task_ids: Sequence[str], policy_fn: PolicyFn, steps: int, num_samples: int
                         ) -> list[list[list[float]]]:
        """[tasks][samples][steps + 1]: the normalised test score of the node the greedy search would submit after
        each step (the paper's MLE test-time scaffold; its choices use only the solutions' own validation scores).

        All chains advance together (one batched policy call and one parallel grade per step). The returned nested
        list also carries the searches behind it as ``.traces`` ({task_id: [chain: [step dicts]]}), which
        ``evaluation.evaluate`` writes to the eval JSON."""
        from exit_jax.domains.mle.scaffold import SearchScores, greedy_search_many

        return SearchScores(greedy_search_many(self, task_ids, policy_fn, steps, num_samples), task_ids, num_samples)

    def ceiling(self, task_id: str) -> float:
        """The best known normalised test score of a competition, shown in reports so saturation is visible.

        Built-ins: the best of their reference specs (``builtin.reference_specs``) graded through the sandbox on
        first use and cached beside the competition. The user's competitions have no reference: 1.0, the top of their
        range. Only for reports; never part of a prompt or a choice."""
        if task_id in self._user:
            return 1.0
        return builtin.reference_ceiling(self.competition(task_id), self.evaluator)

    def close(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True)
        if self._sandbox is not None:
            self._sandbox.close()
