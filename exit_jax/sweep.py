"""Ablation grids: expanding ``config.sweep`` into members, running them, and comparing their results.

A config defines a sweep as a list of dicts of dotted overrides, usually built with ``product``::

    config.sweep = sweep.product(method=["grpo", "curriculum", "improve", "diverge", "exit"], seed=[0, 1, 2])
    config.sweep = sweep.product(**{"curriculum.replay_prob": [0.25, 0.5], "curriculum.divergence_prob": [0.0, 0.5]})

Each member runs ``launch/tpu_run.py`` with its overrides in its own workdir ``<sweep_dir>/<member name>``; member
names read like ``method=grpo,seed=0``. ``compare`` groups members that differ only in their seed and reports
mean ± sample std (``ddof=1``) over seeds. Host-only: no JAX here.

Display labels: an entry may carry the reserved key ``"_label"`` (``LABEL_KEY``), a short name such as ``"base"``
that is *not* passed to the run as an override. A labelled member is named ``<label>`` followed by its seed
overrides (``base,seed=0,curriculum.seed=0``) and is grouped under its label, so members that share a label must
differ in a seed key. ``experiments.common.ladder_sweep`` labels every rung (``base``, ``grpo``, ..., ``exit``).

``write_manifest`` records the plan in ``<sweep_dir>/sweep.json`` (name, label, overrides, workdir of every member)
so ``exit_jax.results`` can tell missing members from members that never existed.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exit_jax.metrics import read_metrics
from exit_jax.report import eval_ks, format_number, load_eval_results, new_figure, table_ks

SCALAR_TYPES = (bool, int, float, str)
LABEL_KEY = "_label"
MANIFEST_FILE = "sweep.json"
REWARD_KEYS = ("reward/mean", "reward", "train/reward")
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.,=+\-]")
_LABEL_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]*")


def product(axes: Mapping[str, Sequence[Any]] | None = None, /, **more_axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The cartesian product of override axes, first axis outermost.

    ``product(method=["grpo", "exit"], seed=[0, 1])`` gives ``[{"method": "grpo", "seed": 0}, {"method": "grpo",
    "seed": 1}, {"method": "exit", "seed": 0}, {"method": "exit", "seed": 1}]``. Dotted keys go in the mapping
    argument or through ``**{"a.b": [...]}``.
    """
    merged = {**(axes or {}), **more_axes}
    for key, values in merged.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"sweep axis {key!r} needs a non-empty list of values, got {values!r}")
    keys = list(merged)
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*merged.values())]


def format_value(value: Any) -> str:
    """The text of a value as ml-collections' ``--config.a.b=`` flag parser reads it."""
    if isinstance(value, tuple | list):
        return repr(tuple(value))
    return str(value)


def member_name(overrides: Mapping[str, Any]) -> str:
    """A readable, filesystem-safe name: ``method=grpo,seed=0`` (characters outside ``[A-Za-z0-9_.,=+-]`` → ``_``)."""
    text = ",".join(f"{key}={format_value(value)}" for key, value in overrides.items())
    return _UNSAFE_NAME_CHARACTERS.sub("_", text) or "default"


def labelled_member_name(label: str, overrides: Mapping[str, Any]) -> str:
    """The name of a labelled member: the label, then its seed overrides (``base,seed=0``)."""
    seeds = {key: value for key, value in overrides.items() if seed_key(key)}
    return label + ("," + member_name(seeds) if seeds else "")


def parse_member_name(name: str) -> dict[str, str]:
    """Inverse of ``member_name`` for grouping (values come back as strings).

    A leading part without ``=`` is a display label (``labelled_member_name``) and comes back under ``LABEL_KEY``.
    """
    parts = name.split(",")
    parsed = {LABEL_KEY: parts[0]} if parts and parts[0] and "=" not in parts[0] else {}
    parsed.update(part.split("=", 1) for part in parts if "=" in part)
    return parsed


def _validate_member(index: int, entry: Any) -> tuple[dict[str, Any], str | None]:
    """(the overrides, the display label or None) of ``config.sweep[index]``."""
    if not isinstance(entry, Mapping) or not entry:
        raise ValueError(f"config.sweep[{index}] must be a non-empty dict of dotted overrides such as "
                         f"{{'method': 'grpo', 'seed': 0}}, got {entry!r}")
    overrides = {key: value for key, value in entry.items() if key != LABEL_KEY}
    label = entry.get(LABEL_KEY)
    if label is not None and not (isinstance(label, str) and _LABEL_PATTERN.fullmatch(label)):
        raise ValueError(f"config.sweep[{index}][{LABEL_KEY!r}] = {label!r}: a label must be a short name of "
                         "letters, digits and _ . + - (no ',' or '='), e.g. 'base'")
    if not overrides:
        raise ValueError(f"config.sweep[{index}] has a label but no overrides; add at least a seed")
    for key, value in overrides.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            raise ValueError(f"config.sweep[{index}] has an invalid key {key!r}; use dotted field names like "
                             "'curriculum.replay_prob'")
        items = value if isinstance(value, tuple | list) else (value,)
        if not all(isinstance(item, SCALAR_TYPES) for item in items):
            raise ValueError(f"config.sweep[{index}][{key!r}] = {value!r}: values must be bool, int, float, str "
                             "or tuples of them")
    return overrides, label


def members(config: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, overrides), ...]`` for ``config.sweep`` (a ConfigDict or a dict), in the sweep's order.

    Display labels are not overrides: see ``labelled_members``.

    Raises:
      ValueError: no sweep, an empty one, a malformed member, or two members with the same name.
    """
    return [(name, overrides) for name, overrides, _ in labelled_members(config)]


def labelled_members(config: Any) -> list[tuple[str, dict[str, Any], str | None]]:
    """``[(name, overrides, label or None), ...]`` for ``config.sweep``; see ``members``."""
    sweep = config.get("sweep") if hasattr(config, "get") else getattr(config, "sweep", None)
    if sweep is None:
        raise ValueError("this config defines no sweep: set config.sweep = sweep.product(method=[...], seed=[...]) "
                         "(or a list of override dicts) in its get_config")
    if isinstance(sweep, Mapping) or isinstance(sweep, str) or not isinstance(sweep, Sequence) or not sweep:
        raise ValueError(f"config.sweep must be a non-empty list of override dicts, got {sweep!r}")
    named = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(sweep):
        overrides, label = _validate_member(index, entry.to_dict() if hasattr(entry, "to_dict") else entry)
        name = labelled_member_name(label, overrides) if label is not None else member_name(overrides)
        if name in seen:
            raise ValueError(f"config.sweep[{seen[name]}] and config.sweep[{index}] both give the member {name!r}"
                             + (" (members that share a label must differ in a seed key)" if label else ""))
        seen[name] = index
        named.append((name, overrides, label))
    return named


def member_command(config_path_with_arg: str, overrides: Mapping[str, Any], workdir: str | os.PathLike,
                   extra_flags: Sequence[str] = (), *, python: str = "python",
                   script: str = "launch/tpu_run.py") -> list[str]:
    """The argv that runs one member: ``python launch/tpu_run.py --config=X --config.a.b=v ... --workdir=W``."""
    return [python, script, f"--config={config_path_with_arg}",
            *(f"--config.{key}={format_value(value)}" for key, value in overrides.items()),
            f"--workdir={workdir}", *extra_flags]


@dataclass(frozen=True)
class Member:
    """One sweep member: its name, overrides, workdir (``<sweep_dir>/<name>``), the argv that runs it, its label."""

    name: str
    overrides: dict[str, Any]
    workdir: Path
    command: list[str]
    label: str | None = None


def plan(config: Any, config_path_with_arg: str, sweep_dir: str | os.PathLike, extra_flags: Sequence[str] = (), *,
         python: str = "python", script: str = "launch/tpu_run.py") -> list[Member]:
    """``labelled_members`` + ``member_command`` for every member, each in ``<sweep_dir>/<member name>``."""
    return [Member(name, overrides, Path(sweep_dir) / name,
                   member_command(config_path_with_arg, overrides, Path(sweep_dir) / name, extra_flags,
                                  python=python, script=script), label)
            for name, overrides, label in labelled_members(config)]


def write_manifest(sweep_dir: str | os.PathLike, planned: Sequence[Member]) -> Path:
    """Writes ``<sweep_dir>/sweep.json``: ``{"members": [{"name", "label", "overrides", "workdir"}, ...]}``.

    Workdirs inside ``sweep_dir`` are stored relative to it, so the directory can be moved or copied.
    """
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for member in planned:
        workdir = Path(member.workdir)
        try:
            workdir = workdir.resolve().relative_to(sweep_dir.resolve())
        except ValueError:
            pass
        entries.append({"name": member.name, "label": member.label, "overrides": member.overrides,
                        "workdir": str(workdir)})
    path = sweep_dir / MANIFEST_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"members": entries}, indent=1), encoding="utf-8")
    temporary.replace(path)
    return path


def read_manifest(sweep_dir: str | os.PathLike) -> list[dict[str, Any]] | None:
    """The members recorded by ``write_manifest`` (workdirs as absolute ``Path``), or None when there is none.

    Raises:
      ValueError: the manifest exists but is not one ``write_manifest`` wrote.
    """
    path = Path(sweep_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["members"]
        return [{"name": str(entry["name"]), "label": entry.get("label"), "overrides": dict(entry["overrides"]),
                 "workdir": Path(sweep_dir) / entry["workdir"]} for entry in entries]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a sweep manifest ({error}); delete it and the results are gathered from "
                         "the member directories instead") from error


def _workdir_of(command: Sequence[str]) -> Path:
    for argument in command:
        if argument.startswith("--workdir="):
            return Path(argument.split("=", 1)[1])
    raise ValueError(f"no --workdir= in {shlex.join(command)}; pass log_dirs to run_local")


def _run_one(command: Sequence[str], log_dir: Path, env: Mapping[str, str] | None) -> int:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout.log", "a", encoding="utf-8") as stdout, \
            open(log_dir / "stderr.log", "a", encoding="utf-8") as stderr:
        stderr.write(f"$ {shlex.join(command)}\n")
        stderr.flush()
        try:
            return subprocess.run(list(command), stdout=stdout, stderr=stderr, env=env, check=False).returncode
        except OSError as error:  # the executable is missing or not runnable
            stderr.write(f"could not start: {error}\n")
            return 127


def run_local(commands: Sequence[Sequence[str]], parallel: int = 1, *,
              log_dirs: Sequence[str | os.PathLike] | None = None, env: Mapping[str, str] | None = None,
              names: Sequence[str] | None = None, echo: bool = True) -> list[int]:
    """Runs the commands ``parallel`` at a time; returns their exit codes in the commands' order.

    Each command's output is appended to ``<log dir>/stdout.log`` and ``stderr.log``, where the log dir is its
    ``--workdir=`` unless ``log_dirs`` is given. With ``echo`` a line per finished member goes to stderr.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be >= 1, got {parallel}")
    directories = [Path(path) for path in log_dirs] if log_dirs is not None else [_workdir_of(c) for c in commands]
    if len(directories) != len(commands):
        raise ValueError(f"{len(commands)} commands but {len(directories)} log directories")
    labels = list(names) if names is not None else [str(directory) for directory in directories]
    finished = 0

    def run(index: int) -> int:
        nonlocal finished
        start = time.monotonic()
        code = _run_one(commands[index], directories[index], env)
        finished += 1
        if echo:
            print(f"[{finished}/{len(commands)}] {labels[index]}: exit {code} ({time.monotonic() - start:.1f} s, "
                  f"logs in {directories[index]})", file=sys.stderr, flush=True)
        return code

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(run, range(len(commands))))


def seed_key(key: str) -> bool:
    """Whether an override key is a seed (``seed`` or ``*.seed``): members differing only there form one group."""
    return key == "seed" or key.endswith(".seed")


def group_label(setting: Mapping[str, Any]) -> str:
    """The comparison group of a member's overrides: its label, else its non-seed overrides (``all`` if none)."""
    if setting.get(LABEL_KEY):
        return str(setting[LABEL_KEY])
    label = member_name({key: value for key, value in setting.items() if not seed_key(key)})
    return label if label != "default" else "all"


def final_reward(history: Sequence[Mapping[str, Any]]) -> float | None:
    """Mean of the last 10% (at least one) of the finite logged training rewards (``REWARD_KEYS``), or None."""
    key = next((key for key in REWARD_KEYS if any(key in record for record in history)), None)
    rewards = [record[key] for record in history if key is not None and key in record]
    rewards = [value for value in rewards if value is not None and math.isfinite(value)]
    if not rewards:
        return None
    tail = max(1, len(rewards) // 10)
    return float(np.mean(rewards[-tail:]))


def _final_reward(workdir: Path) -> float | None:
    return final_reward(read_metrics(workdir))


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else math.nan)


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "–"
    mean, std = _mean_std(values)
    return format_number(mean) + ("" if math.isnan(std) else f" ± {format_number(std)}")


def compare(member_workdirs: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
            sweep_dir: str | os.PathLike | None = None, *,
            overrides: Sequence[Mapping[str, Any]] | None = None,
            labels: Sequence[str | None] | None = None) -> tuple[str, Path | None]:
    """Compares members' latest evaluations; writes ``<sweep_dir>/comparison.md`` and ``comparison.png``.

    Members whose overrides differ only in a seed key (``seed`` or ``*.seed``) form one group; each cell is the
    mean ± sample std (``ddof=1``) over the group's members. A member's overrides come from ``overrides`` when
    given, else from its name (the mapping's key or the workdir's base name, as ``member_name`` writes it).
    A member with a display label (``labels``, or a labelled name) is grouped under that label instead.

    Args:
      member_workdirs: workdirs, or {member name: workdir}.
      sweep_dir: where the comparison goes (default: the members' common parent directory).

    Returns:
      (the markdown table, the plot's path or ``None`` when no member has an evaluation).
    """
    if isinstance(member_workdirs, Mapping):
        names, workdirs = list(member_workdirs), [Path(path) for path in member_workdirs.values()]
    else:
        workdirs = [Path(path) for path in member_workdirs]
        names = [path.name for path in workdirs]
    if not workdirs:
        raise ValueError("compare needs at least one member workdir")
    settings = [dict(item) for item in overrides] if overrides is not None else [parse_member_name(n) for n in names]
    if labels is not None:
        if len(labels) != len(settings):
            raise ValueError(f"{len(settings)} members but {len(labels)} labels")
        settings = [{**setting, LABEL_KEY: label} if label else setting
                    for setting, label in zip(settings, labels, strict=True)]
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else Path(os.path.commonpath([p.resolve() for p in workdirs]))
    if len(workdirs) == 1 and sweep_dir == workdirs[0].resolve():
        sweep_dir = sweep_dir.parent
    groups: dict[str, list[int]] = {}
    for index, setting in enumerate(settings):
        groups.setdefault(group_label(setting), []).append(index)

    latest = [(load_eval_results(workdir) or [None])[-1] for workdir in workdirs]
    all_ks = sorted({k for result in latest if result for k in eval_ks(result)})
    shown = table_ks(all_ks)
    rows = ["| group | seeds | " + " | ".join(f"k={k}" for k in shown) + " | Δ_K | final reward |",
            "|" + "---|" * (len(shown) + 4)]
    missing = []
    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    plotted = False
    for index, (label, group) in enumerate(groups.items()):
        results = [latest[member] for member in group if latest[member] is not None]
        missing += [names[member] for member in group if latest[member] is None]
        cells = []
        for k in shown:
            values = [_number(result["mean"][eval_ks(result).index(k)]) for result in results if k in eval_ks(result)]
            cells.append(_cell(values))
        deltas = [_number(result["delta_K"]) for result in results if result.get("delta_K") is not None]
        rewards = [reward for member in group if (reward := _final_reward(workdirs[member])) is not None]
        rows.append(f"| {label} | {len(results)}/{len(group)} | " + " | ".join(cells)
                    + f" | {_cell(deltas)} | {_cell(rewards)} |")
        if results:
            length = min(len(result["mean"]) for result in results)
            curves = np.asarray([result["mean"][:length] for result in results], dtype=np.float64)
            ks = eval_ks(results[0])[:length]
            mean = curves.mean(axis=0)
            axes.plot(ks, mean, color=f"C{index % 10}", linewidth=1.8, marker="o", markersize=3,
                      label=f"{label} (n={len(results)})")
            if len(results) > 1:
                std = curves.std(axis=0, ddof=1)
                axes.fill_between(ks, mean - std, mean + std, color=f"C{index % 10}", alpha=0.15, linewidth=0)
            plotted = True
    table = "\n".join(rows)
    lines = ["# Sweep comparison", "", f"{len(workdirs)} members in {len(groups)} groups; cells are mean ± sample "
             "std over seeds of each member's latest held-out evaluation (Δ_K = score at K − score at 0; final "
             "reward = mean of the last 10% of logged rewards).", "", table, ""]
    if missing:
        lines += ["Members without an evaluation: " + ", ".join(f"`{name}`" for name in missing), ""]
    png_path = None
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if plotted:
        axes.set_xlabel("self-improvement step k")
        axes.set_ylabel("held-out score (mean over tasks)")
        axes.set_title("score vs k per group (band: ± std over seeds)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        png_path = sweep_dir / "comparison.png"
        figure.savefig(png_path)
        lines += ["![comparison](comparison.png)", ""]
    (sweep_dir / "comparison.md").write_text("\n".join(lines), encoding="utf-8")
    return table, png_path
