"""The gcloud commands of a TPU VM launch, dry-run printing, and the env-gated jax.distributed initialisation."""

import os
import shlex
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from exit_jax import tpu_vm

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = ["python3", "launch/tpu_run.py", "--config=experiments/math.py:llama3.2-3b", "--workdir=gs://bucket/run 1"]


def test_tpu_commands_exact_argv():
    commands = tpu_vm.tpu_commands("my-pod", "us-central2-b", "my-project", RUN, "/src/exit_jax",
                                   local_tarball="/tmp/code.tar.gz")
    excludes = ["--exclude=./runs", "--exclude=.git", "--exclude=__pycache__", "--exclude=*.pyc",
                "--exclude=.pytest_cache", "--exclude=.ruff_cache", "--exclude=.mypy_cache", "--exclude=.hypothesis",
                "--exclude=.venv", "--exclude=venv", "--exclude=*.egg-info"]
    assert commands == [
        ["tar", "-czf", "/tmp/code.tar.gz", *excludes, "-C", "/src/exit_jax", "."],
        ["gcloud", "compute", "tpus", "tpu-vm", "scp", "/tmp/code.tar.gz", "my-pod:exit_jax.tar.gz", "--worker=all",
         "--zone=us-central2-b", "--project=my-project"],
        ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod", "--worker=all", "--zone=us-central2-b",
         "--project=my-project",
         "--command=mkdir -p ~/exit_jax && tar -xzf ~/exit_jax.tar.gz -C ~/exit_jax"
         " && bash ~/exit_jax/launch/tpu_setup.sh"],
        ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-pod", "--worker=all", "--zone=us-central2-b",
         "--project=my-project",
         "--command=cd ~/exit_jax && EXIT_JAX_DISTRIBUTED=1 python3 launch/tpu_run.py "
         "--config=experiments/math.py:llama3.2-3b '--workdir=gs://bucket/run 1'"]]


def test_project_is_optional_and_remote_command_round_trips_through_the_shell():
    commands = tpu_vm.tpu_commands("pod", "europe-west4-a", None, RUN, ".", remote_dir="/opt/my code",
                                   env={"XLA_FLAGS": "--a --b"})
    assert not any(argument.startswith("--project") for command in commands for argument in command)
    assert commands[1][6] == "pod:/opt/my code.tar.gz"
    remote = commands[-1][-1].removeprefix("--command=")
    # The remote shell splits it back into: cd DIR && VAR=.. VAR=.. <the argv>.
    words = shlex.split(remote)
    assert words[:3] == ["cd", "/opt/my code", "&&"]
    assert words[3:5] == ["EXIT_JAX_DISTRIBUTED=1", "XLA_FLAGS=--a --b"] and words[5:] == RUN


def test_missing_zone_or_command_is_a_clear_error():
    with pytest.raises(ValueError, match="--zone"):
        tpu_vm.tpu_commands("pod", "", None, RUN, ".")
    with pytest.raises(ValueError, match="command_argv is empty"):
        tpu_vm.run_command("pod", "zone", None, [])


def test_dry_run_prints_every_command_and_runs_nothing(capsys, tmp_path):
    tarball = tmp_path / "x.tgz"
    commands = tpu_vm.tpu_commands("my-pod", "us-central2-b", None, RUN, ".", local_tarball=str(tarball))
    assert tpu_vm.run_commands(commands, dry_run=True) == 0
    printed = capsys.readouterr().out
    assert printed == tpu_vm.format_commands(commands) + "\n"
    assert [shlex.split(line) for line in printed.splitlines()] == commands
    assert not tarball.exists()


def test_run_commands_stops_at_the_first_failure(tmp_path):
    marker = tmp_path / "ran"
    commands = [[sys.executable, "-c", "pass"], [sys.executable, "-c", "raise SystemExit(3)"],
                [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]]
    assert tpu_vm.run_commands(commands, printer=lambda line: None) == 3
    assert not marker.exists()
    assert tpu_vm.run_commands([["/nonexistent/gcloud"]], printer=lambda line: None) == 127


def test_the_tar_step_leaves_out_runs_and_caches(tmp_path):
    repo = tmp_path / "repo"
    for relative in ("exit_jax/a.py", "exit_jax/__pycache__/a.cpython-311.pyc", "runs/x/metrics.jsonl",
                     "exit_jax/runs/keep.py", ".git/HEAD", "launch/tpu_setup.sh"):
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text("x")
    tar_command = tpu_vm.copy_commands("pod", "zone", None, str(repo), local_tarball=str(tmp_path / "c.tgz"))[0]
    subprocess.run(tar_command, check=True)
    with tarfile.open(tmp_path / "c.tgz") as archive:
        files = sorted(member.name for member in archive.getmembers() if member.isfile())
    assert files == ["./exit_jax/a.py", "./exit_jax/runs/keep.py", "./launch/tpu_setup.sh"]


def test_setup_script_installs_tpu_jax_from_the_libtpu_index():
    script = (REPO_ROOT / "launch" / "tpu_setup.sh").read_text()
    assert "jax[tpu]" in script and "https://storage.googleapis.com/jax-releases/libtpu_releases.html" in script
    assert subprocess.run(["bash", "-n", str(REPO_ROOT / "launch" / "tpu_setup.sh")]).returncode == 0


def test_no_distributed_env_means_no_jax_import():
    code = ("import sys; from exit_jax import tpu_vm, metrics, report, results, results_plots, sweep\n"
            "assert tpu_vm.maybe_initialize_distributed({}) is False\n"
            "assert tpu_vm.maybe_initialize_distributed({'EXIT_JAX_DISTRIBUTED': '0'}) is False\n"
            "assert 'jax' not in sys.modules, 'a host-side module imported jax'\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("EXIT_JAX_")}
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True)


@pytest.mark.parametrize("environ, message", [
    ({"EXIT_JAX_COORDINATOR": "h:1", "EXIT_JAX_PROCESS_ID": "0"}, "EXIT_JAX_NUM_PROCESSES must be an integer"),
    ({"EXIT_JAX_COORDINATOR": "h:1", "EXIT_JAX_NUM_PROCESSES": "2", "EXIT_JAX_PROCESS_ID": "x"},
     "EXIT_JAX_PROCESS_ID must be an integer"),
    ({"EXIT_JAX_COORDINATOR": "h:1", "EXIT_JAX_NUM_PROCESSES": "2", "EXIT_JAX_PROCESS_ID": "2"}, r"in \[0,")])
def test_incomplete_coordinator_settings_are_clear_errors(environ, message):
    with pytest.raises(ValueError, match=message):
        tpu_vm.maybe_initialize_distributed(environ)


def test_two_local_cpu_processes_form_one_cluster():
    """Both processes join through EXIT_JAX_COORDINATOR and all-gather each other's process index."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("from exit_jax.tpu_vm import maybe_initialize_distributed\n"
            "assert maybe_initialize_distributed()\n"
            "import jax, jax.numpy as jnp, numpy as np\n"
            "from jax.experimental import multihost_utils\n"
            "gathered = multihost_utils.process_allgather(jnp.array([jax.process_index() + 1.0]))\n"
            "print('RESULT', jax.process_index(), jax.process_count(), np.asarray(gathered).ravel().tolist())\n")
    processes = []
    for process_id in range(2):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", "EXIT_JAX_COORDINATOR": f"127.0.0.1:{port}",
               "EXIT_JAX_NUM_PROCESSES": "2", "EXIT_JAX_PROCESS_ID": str(process_id)}
        env.pop("EXIT_JAX_DISTRIBUTED", None)
        processes.append(subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]
        outputs.append(next(line for line in stdout.splitlines() if line.startswith("RESULT")))
    assert outputs == ["RESULT 0 2 [1.0, 2.0]", "RESULT 1 2 [1.0, 2.0]"]
