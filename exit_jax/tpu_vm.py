"""Cloud TPU VM launch: the gcloud commands that ship the code to every worker and run one command on all of them,
and the env-gated ``jax.distributed.initialize()`` that the program calls at start-up.

The launch follows big_vision's recipe: copy the code with ``gcloud compute tpus tpu-vm scp --worker=all``, then
``gcloud compute tpus tpu-vm ssh NAME --worker=all --command=...`` so every host runs the same program. The remote
command sets ``EXIT_JAX_DISTRIBUTED=1``; only then does ``maybe_initialize_distributed`` call
``jax.distributed.initialize()`` (which auto-detects the TPU pod's coordinator). A single-host CPU run never calls
it. JAX is imported only inside ``maybe_initialize_distributed``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence

DISTRIBUTED_ENV = "EXIT_JAX_DISTRIBUTED"
COORDINATOR_ENV = "EXIT_JAX_COORDINATOR"
NUM_PROCESSES_ENV = "EXIT_JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "EXIT_JAX_PROCESS_ID"

# Left out of the code tarball: run outputs, VCS metadata, caches and local environments.
TAR_EXCLUDES = ("./runs", ".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".mypy_cache",
                ".hypothesis", ".venv", "venv", "*.egg-info")


def _remote_path(path: str) -> str:
    """Shell text for a remote path: quoted, but a leading ``~/`` stays unquoted so the remote shell expands it."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def _scp_target(remote_dir: str) -> str:
    """Where the tarball lands remotely, as scp reads it: relative to the home directory for ``~/...`` paths."""
    stripped = remote_dir.rstrip("/")
    if stripped.startswith("~/"):
        stripped = stripped[2:]
    return stripped + ".tar.gz"


def _gcloud_location(zone: str, project: str | None) -> list[str]:
    return [f"--zone={zone}", *([f"--project={project}"] if project else [])]


def ssh_command(tpu: str, zone: str, project: str | None, remote_shell: str) -> list[str]:
    """``gcloud compute tpus tpu-vm ssh TPU --worker=all --zone=Z [--project=P] --command=REMOTE_SHELL``."""
    return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, "--worker=all", *_gcloud_location(zone, project),
            f"--command={remote_shell}"]


def copy_commands(tpu: str, zone: str, project: str | None, repo_dir: str, remote_dir: str = "~/exit_jax", *,
                  local_tarball: str | None = None) -> list[list[str]]:
    """Tar the repository (without runs/ and caches) and scp it to every worker.

    Returns:
      ``[tar command, gcloud scp command]``; unpacking happens in ``setup_command``.
    """
    tarball = local_tarball or os.path.join(tempfile.gettempdir(), f"exit_jax-{tpu}.tar.gz")
    tar = ["tar", "-czf", tarball, *(f"--exclude={pattern}" for pattern in TAR_EXCLUDES), "-C", repo_dir, "."]
    scp = ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball, f"{tpu}:{_scp_target(remote_dir)}",
           "--worker=all", *_gcloud_location(zone, project)]
    return [tar, scp]


def setup_command(tpu: str, zone: str, project: str | None, remote_dir: str = "~/exit_jax") -> list[str]:
    """Unpack the code over ``remote_dir`` on every worker and run ``launch/tpu_setup.sh`` there.

    The directory is not wiped first: a relative ``--workdir`` (``runs/...``) lives inside it on each worker and
    must survive a re-launch.
    """
    directory = _remote_path(remote_dir.rstrip("/") or "/")
    tarball = _remote_path(remote_dir.rstrip("/") + ".tar.gz")
    remote = f"mkdir -p {directory} && tar -xzf {tarball} -C {directory} && bash {directory}/launch/tpu_setup.sh"
    return ssh_command(tpu, zone, project, remote)


def run_command(tpu: str, zone: str, project: str | None, command_argv: Sequence[str],
                remote_dir: str = "~/exit_jax", env: Mapping[str, str] | None = None) -> list[str]:
    """Run ``command_argv`` in ``remote_dir`` on every worker with ``EXIT_JAX_DISTRIBUTED=1`` (plus ``env``)."""
    if not command_argv:
        raise ValueError("command_argv is empty: pass the program to run, e.g. ['python3', 'launch/tpu_run.py', ...]")
    variables = {DISTRIBUTED_ENV: "1", **(env or {})}
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())
    remote = f"cd {_remote_path(remote_dir)} && {assignments} {shlex.join(command_argv)}"
    return ssh_command(tpu, zone, project, remote)


def tpu_commands(tpu: str, zone: str, project: str | None, command_argv: Sequence[str], repo_dir: str,
                 remote_dir: str = "~/exit_jax", *, local_tarball: str | None = None,
                 env: Mapping[str, str] | None = None) -> list[list[str]]:
    """Every command of a TPU VM launch, in order: tar, scp to all workers, unpack + setup, run on all workers.

    Args:
      tpu: the TPU VM (pod slice) name.
      zone: its zone, e.g. ``us-central2-b``.
      project: the GCP project, or ``None`` for gcloud's default.
      command_argv: the program to run in ``remote_dir`` on every worker, e.g.
        ``["python3", "launch/tpu_run.py", "--config=experiments/math.py:llama3.2-3b", "--workdir=gs://b/run"]``.
      repo_dir: the local repository root to ship.
      remote_dir: where the code lives on the workers.
      local_tarball: where the tarball is built locally (default: ``$TMPDIR/exit_jax-<tpu>.tar.gz``).
      env: extra environment variables for the run.
    """
    if not tpu or not zone:
        raise ValueError("a TPU launch needs --tpu=NAME and --zone=ZONE (e.g. --zone=us-central2-b)")
    return [*copy_commands(tpu, zone, project, repo_dir, remote_dir, local_tarball=local_tarball),
            setup_command(tpu, zone, project, remote_dir),
            run_command(tpu, zone, project, command_argv, remote_dir, env)]


def format_commands(commands: Sequence[Sequence[str]]) -> str:
    """One shell-quoted line per command (what ``--dry_run`` prints)."""
    return "\n".join(shlex.join(command) for command in commands)


def run_commands(commands: Sequence[Sequence[str]], dry_run: bool = False,
                 printer: Callable[[str], None] = print) -> int:
    """Runs the commands in order, stopping at the first failure; returns its exit code (0 when all pass).

    With ``dry_run`` the commands are printed (one line each, shell-quoted) and nothing runs.
    """
    for command in commands:
        printer(shlex.join(command))
        if dry_run:
            continue
        try:
            code = subprocess.run(list(command), check=False).returncode
        except OSError as error:
            print(f"could not run {command[0]!r}: {error} (is the Google Cloud SDK installed and on PATH?)",
                  file=sys.stderr)
            return 127
        if code != 0:
            print(f"command failed with exit code {code}: {shlex.join(command)}", file=sys.stderr)
            return code
    return 0


def distributed_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for ``jax.distributed.initialize()`` (see ``maybe_initialize_distributed``)."""
    environ = os.environ if environ is None else environ
    return environ.get(DISTRIBUTED_ENV, "") == "1" or bool(environ.get(COORDINATOR_ENV))


def maybe_initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Calls ``jax.distributed.initialize()`` when the environment asks for it; returns whether it did.

    * ``EXIT_JAX_COORDINATOR=host:port`` with ``EXIT_JAX_NUM_PROCESSES`` and ``EXIT_JAX_PROCESS_ID``: an explicit
      cluster (the 2-process CPU test, or any non-TPU cluster).
    * ``EXIT_JAX_DISTRIBUTED=1`` alone: auto-detection (Cloud TPU pods, SLURM, ...), as set by ``run_command``.
    * Neither: nothing happens and JAX is not even imported (single-host runs).

    Call it before anything else touches JAX devices. Calling it again after a successful initialization is a no-op.

    Raises:
      ValueError: the coordinator is set but the process count or id is missing or not an integer.
    """
    environ = os.environ if environ is None else environ
    if not distributed_requested(environ):
        return False
    coordinator = environ.get(COORDINATOR_ENV)
    settings = {}
    if coordinator:
        for name in (NUM_PROCESSES_ENV, PROCESS_ID_ENV):
            text = environ.get(name, "")
            try:
                settings[name] = int(text)
            except ValueError:
                raise ValueError(f"{COORDINATOR_ENV}={coordinator} is set, so {name} must be an integer; got "
                                 f"{text!r}. Set {NUM_PROCESSES_ENV} (how many processes) and {PROCESS_ID_ENV} "
                                 "(0-based, unique per process) too.") from None
        if not 0 <= settings[PROCESS_ID_ENV] < settings[NUM_PROCESSES_ENV]:
            raise ValueError(f"{PROCESS_ID_ENV}={settings[PROCESS_ID_ENV]} must be in [0, {NUM_PROCESSES_ENV}="
                             f"{settings[NUM_PROCESSES_ENV]})")
    import jax

    if jax.distributed.is_initialized():
        return True
    if not coordinator:
        jax.distributed.initialize()
        return True
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=settings[NUM_PROCESSES_ENV],
                               process_id=settings[PROCESS_ID_ENV])
    return True
