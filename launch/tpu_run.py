"""exit_jax's entry point.

    python launch/tpu_run.py --config=experiments/mle.py[:preset,method=...,seed=...] [--config.a.b=value]
                             [--workdir=DIR] [--sweep [--parallel=N | --print_commands] [--results_md=PATH]]
                             [--tpu=NAME --zone=ZONE [--project=P] [--dry_run]]

An existing workdir resumes from its latest checkpoint. ``--sweep`` runs every member of the config's sweep in its own
workdir and writes one comparison table and plot, and the results page ``<sweep dir>/results.md`` (plus
``--results_md``, e.g. docs/results.md; see exit_jax/results.py). ``--tpu`` copies the code to every worker of a Cloud
TPU VM and runs the same command there (``--dry_run`` prints the gcloud commands instead).
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config: experiments/<name>.py[:arg]",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (default runs/<experiment>-<method>-<seed>)")
flags.DEFINE_bool("sweep", False, "run every member of config.sweep.members")
flags.DEFINE_integer("parallel", 1, "sweep members run at once")
flags.DEFINE_bool("print_commands", False, "with --sweep: print one command per member instead of running")
flags.DEFINE_string("results_md", None, "with --sweep: also write the results page here (e.g. docs/results.md)")
flags.DEFINE_string("tpu", None, "Cloud TPU VM name: run there on every worker")
flags.DEFINE_string("zone", None, "Cloud TPU zone")
flags.DEFINE_string("project", None, "GCP project")
flags.DEFINE_bool("dry_run", False, "with --tpu: print the gcloud commands instead of running them")
FLAGS = flags.FLAGS


def _default_workdir(config) -> str:
    return os.path.join("runs", f"{config.experiment}-{config.curriculum.method}-{config.seed}")


def _passthrough_args(argv_all: list[str], drop: tuple[str, ...]) -> list[str]:
    return [a for a in argv_all[1:] if not a.startswith(drop)]


def _config_arg(argv_all: list[str]) -> str:
    """The raw ``--config=path[:arg]`` value (sweep members rerun the same config file and preset)."""
    for i, a in enumerate(argv_all):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config" and i + 1 < len(argv_all):
            return argv_all[i + 1]
    raise app.UsageError("--config=experiments/<name>.py is required")


def run_sweep(config, sweep_dir: str, parallel: int, print_only: bool, results_md: str | None = None) -> int:
    """Runs (or prints) every sweep member, then writes comparison.md and the results page(s).

    The results page (``exit_jax.results``) goes to ``<sweep_dir>/results.md`` and, with ``results_md``, also there
    (e.g. ``docs/results.md``, where it replaces only this experiment's block).
    """
    import shlex

    from exit_jax import results, sweep

    overrides = [a for a in _passthrough_args(sys.argv, ("--sweep", "--parallel", "--print_commands", "--workdir",
                                                          "--results_md", "--config=")) if a != "--config"]
    if (config.warm_start.steps > 0 and not config.warm_start.cache_dir
            and not any(a.startswith("--config.warm_start.cache_dir") for a in overrides)):
        # Members share the warm-started base policy (model.seed): trained once, loaded by the others (bitwise).
        overrides.append(f"--config.warm_start.cache_dir={os.path.join(sweep_dir, 'warm_start')}")
    members = sweep.plan(config, _config_arg(sys.argv), sweep_dir, overrides, python=sys.executable)
    if print_only:
        for member in members:
            print(" ".join(member.command))
        return 0
    sweep.write_manifest(sweep_dir, members)
    codes = sweep.run_local([m.command for m in members], parallel=parallel, names=[m.name for m in members])
    table, plot = sweep.compare({m.name: m.workdir for m in members}, sweep_dir,
                                overrides=[m.overrides for m in members], labels=[m.label for m in members])
    print(table)
    print(f"comparison: {os.path.join(sweep_dir, 'comparison.md')}" + (f", plot {plot}" if plot else ""))
    command = shlex.join(["python", os.path.relpath(sys.argv[0]) if os.path.isabs(sys.argv[0]) else sys.argv[0],
                          *sys.argv[1:]])
    for out_md in [os.path.join(sweep_dir, "results.md")] + ([results_md] if results_md else []):
        try:
            page = results.write_results(sweep_dir, out_md, command=command)
        except (ValueError, OSError) as error:
            print(f"error: results page {out_md}: {error}", file=sys.stderr)
            codes.append(1)
            continue
        print(f"results: {page.path} (" + ", ".join(f"{key}: {status}" for key, status in page.verdict.items()) + ")")
    return 0 if all(code == 0 for code in codes) else 1


def _check_config_file(argv_all: list[str]) -> None:
    """A missing config file fails here, before anything runs (ml_collections would only fail at first use)."""
    path = _config_arg(argv_all).split(":", 1)[0]
    if not os.path.isfile(path):
        known = sorted(f"experiments/{n}" for n in os.listdir(os.path.join(REPO, "experiments"))
                       if n.endswith(".py") and n not in ("__init__.py", "common.py"))
        sys.exit(f"error: --config: no such file {path!r} (from {os.getcwd()}). Pass an experiment file, e.g. "
                 f"--config={known[0]}:smoke; available: {', '.join(known)}")


def _unknown_override(argv_all: list[str]) -> str | None:
    """The message for a ``--config.a.b=value`` that names no field of the config, or None."""
    import importlib.util

    import ml_collections

    path, _, config_arg = _config_arg(argv_all).partition(":")
    spec = importlib.util.spec_from_file_location("exit_jax_config_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(config_arg) if config_arg else module.get_config()
    for arg in argv_all:
        if not arg.startswith("--config."):
            continue
        keys = arg[len("--config."):].split("=", 1)[0].split(".")
        node = config
        for depth, key in enumerate(keys):
            if not isinstance(node, ml_collections.ConfigDict) or key not in node:
                section = "config." + ".".join(keys[:depth]) if depth else "the config"
                known = (", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict)
                         else "none (not a section)")
                return (f"--config.{'.'.join(keys)}: {section} has no field {key!r}. Known fields: {known}. "
                        "Fix the override's name; nothing was run or written.")
            node = node[key]
    return None


def _parse_flags(argv_all: list[str]) -> list[str]:
    """absl's flag parsing, plus a readable message for a mistyped ``--config.`` override."""
    try:
        return flags.FLAGS(argv_all)
    except flags.Error as error:
        sys.stderr.write(f"FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)
    except (AttributeError, KeyError):
        message = _unknown_override(argv_all)
        if message is None:
            raise
        sys.exit(f"FATAL Flags parsing error: {message}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
    _check_config_file(sys.argv)
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config=experiments/<name>.py is required")
    from exit_jax.trainer import validate
    from experiments.common import finalize

    config = finalize(config)  # derived fields (rl.batch_size = prompts x G, ...) follow the overrides
    try:
        validate(config)
    except ValueError as error:
        sys.exit(f"error: invalid config: {error}")
    workdir = FLAGS.workdir or _default_workdir(config)

    if FLAGS.tpu:
        from exit_jax.tpu_vm import run_commands, tpu_commands

        if not FLAGS.zone:
            raise app.UsageError("--tpu needs --zone")
        command = ["python3", "launch/tpu_run.py",
                   *_passthrough_args(sys.argv, ("--tpu", "--zone", "--project", "--dry_run"))]
        return run_commands(tpu_commands(FLAGS.tpu, FLAGS.zone, FLAGS.project, command, REPO),
                            dry_run=FLAGS.dry_run)

    if FLAGS.sweep:
        return run_sweep(config, FLAGS.workdir or os.path.join("runs", f"{config.experiment}-sweep"),
                         FLAGS.parallel, FLAGS.print_commands, FLAGS.results_md)

    from exit_jax.tpu_vm import maybe_initialize_distributed

    maybe_initialize_distributed()
    from exit_jax.checkpoint import CheckpointMismatchError
    from exit_jax.domains.mle.sandbox import SandboxError
    from exit_jax.errors import SetupError
    from exit_jax.run import run_experiment

    try:
        summary = run_experiment(config, workdir)
    except (CheckpointMismatchError, SandboxError, SetupError) as error:
        sys.exit(f"error: {error}")
    if summary.get("stopped"):
        return 0
    if "report" in summary:
        k = summary["K"]
        print(f"done: {summary['iteration']} iterations; held-out score k=0 {summary['score_k0']:.3f} -> "
              f"k={k} {summary['score_kK']:.3f}; report: {summary['report']}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
