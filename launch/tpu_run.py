"""exit_jax's entry point.

    python launch/tpu_run.py --config=experiments/mle.py[:preset,method=...,seed=...] [--config.a.b=value]
                             [--workdir=DIR] [--sweep [--parallel=N | --print_commands]]
                             [--tpu=NAME --zone=ZONE [--project=P] [--dry_run]]

An existing workdir resumes from its latest checkpoint. ``--sweep`` runs every member of the config's sweep in its own
workdir and writes one comparison table and plot. ``--tpu`` copies the code to every worker of a Cloud TPU VM and runs
the same command there (``--dry_run`` prints the gcloud commands instead).
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


def run_sweep(config, sweep_dir: str, parallel: int, print_only: bool) -> int:
    from exit_jax import sweep

    overrides = [a for a in _passthrough_args(sys.argv, ("--sweep", "--parallel", "--print_commands", "--workdir",
                                                          "--config=")) if a != "--config"]
    members = sweep.plan(config, _config_arg(sys.argv), sweep_dir, overrides, python=sys.executable)
    if print_only:
        for member in members:
            print(" ".join(member.command))
        return 0
    codes = sweep.run_local([m.command for m in members], parallel=parallel, names=[m.name for m in members])
    table, plot = sweep.compare({m.name: m.workdir for m in members}, sweep_dir,
                                overrides=[m.overrides for m in members])
    print(table)
    print(f"comparison: {os.path.join(sweep_dir, 'comparison.md')}" + (f", plot {plot}" if plot else ""))
    return 0 if all(code == 0 for code in codes) else 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config=experiments/<name>.py is required")
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
                         FLAGS.parallel, FLAGS.print_commands)

    from exit_jax.tpu_vm import maybe_initialize_distributed

    maybe_initialize_distributed()
    from exit_jax.run import run_experiment

    summary = run_experiment(config, workdir)
    if summary.get("stopped"):
        return 0
    if "report" in summary:
        k = summary["K"]
        print(f"done: {summary['iteration']} iterations; held-out score k=0 {summary['score_k0']:.3f} -> "
              f"k={k} {summary['score_kK']:.3f}; report: {summary['report']}")
    return 0


if __name__ == "__main__":
    app.run(main)
