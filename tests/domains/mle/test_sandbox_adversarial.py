"""Hostile solutions: each is contained, reported invalid with a clear reason, and leaves nothing running."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading

import pytest

from exit_jax.domains.mle.grading import Evaluator
from tests.domains.mle.conftest import SECRET, TEST_LIMITS

SHORT = dataclasses.replace(TEST_LIMITS, timeout_s=3.0, memory_mb=1500)

GOOD = """
import os
import pandas as pd
test = pd.read_csv(os.path.join(os.environ["PUBLIC_RESOURCE_PATH"], "test.csv"))
pd.DataFrame({"id": test["id"], "target": 2 * test["x0"] - test["x1"]}).to_csv("submission.csv", index=False)
print("validation_score: 0.0")
"""


def _live_processes(uids: set[int]) -> list[int]:
    """Independent check: host pids (not zombies) owned by any of the sandbox's uids."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid not in uids:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    found.append(int(name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def evaluator(sandbox):
    return Evaluator(sandbox)


def _run(evaluator, competition, code):
    result = evaluator.evaluate(competition, code, SHORT)
    uids = {worker.uid for worker in evaluator.sandbox._pool}
    assert _live_processes(uids) == [], "a process of the sandbox uid survived"
    return result


def test_good_solution_is_valid_and_isolated(evaluator, toy_competition):
    result = _run(evaluator, toy_competition, GOOD)
    assert result.valid, result.feedback
    assert result.validation_score == 0.0
    if os.geteuid() == 0:
        assert result.isolation["uid_drop"] and result.isolation["network_namespace"]


@pytest.mark.parametrize("name, code, reasons", [
    ("infinite loop", "while True:\n    pass\n", {"timeout", "cpu_limit"}),
    ("fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
     {"timeout", "process_limit", "cpu_limit"}),
    ("memory bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(256 << 20))\n", {"memory_limit"}),
    ("disk fill", "i = 0\nwhile True:\n    open(f'fill{i}', 'wb').write(b'x' * (8 << 20))\n    i += 1\n",
     {"disk_limit"}),
    ("one big file", "open('big', 'wb').write(b'x' * (64 << 20))\n", {"disk_limit"}),
    ("stdout flood", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", {"output_limit"}),
    ("double-forking daemon",
     "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(600)\n"
     "    os._exit(0)\nos.wait()\n" + GOOD, {"background_processes"}),
])
def test_hostile_solution_contained(evaluator, toy_competition, name, code, reasons):
    result = _run(evaluator, toy_competition, code)
    assert not result.valid, name
    assert result.normalized_score == 0.0
    if os.geteuid() == 0 or name not in ("double-forking daemon",):
        assert result.error in reasons, (name, result.error, result.feedback[-500:])
    assert len(result.feedback) < 20000


def test_answers_unreachable(evaluator, toy_competition, monkeypatch):
    answers = str(toy_competition.answers_path)
    code = f"""
import glob, os
found = []
def attempt(path):
    try:
        with open(path) as handle:
            text = handle.read()
        if "987654" in text:
            found.append(path)
    except Exception as err:
        print("blocked", path, type(err).__name__)
attempt({answers!r})
import ctypes
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: makes /proc/self/environ (inherited block) readable
attempt("/proc/self/environ")
for key, value in os.environ.items():
    if "987654" in value or "answers" in value:
        found.append("env:" + key)
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for part in ("environ", "cmdline"):
            attempt(f"/proc/{{pid}}/{{part}}")
        attempt(f"/proc/{{pid}}/root" + {answers!r})
        attempt(f"/proc/{{pid}}/cwd/../../private/answers.csv")
here = os.getcwd()
for _ in range(8):
    here = os.path.dirname(here)
    print("walk", here, sorted(os.listdir(here))[:5] if os.access(here, os.R_OK) else "unlistable")
    for pattern in ("answers.csv", "*/answers.csv", "*/*/answers.csv", "*/*/*/answers.csv"):
        for match in glob.glob(os.path.join(here, pattern))[:20]:
            attempt(match)
for guess in ("../private/answers.csv", "../../private/answers.csv", "/root/.cache/exit_jax/mle"):
    attempt(guess)
print("FOUND" if found else "NOTHING", found)
""" + GOOD
    result = _run(evaluator, toy_competition, code)
    assert "NOTHING" in result.feedback, result.feedback
    assert str(SECRET)[:6] == "987654" and "987654" not in result.feedback


def test_submission_symlink_to_answers_is_refused(evaluator, toy_competition):
    code = f"import os\nos.symlink({str(toy_competition.answers_path)!r}, 'submission.csv')\n"
    result = _run(evaluator, toy_competition, code)
    assert not result.valid and result.error == "malformed_submission"
    assert "not a regular file" in result.feedback


def test_no_network_to_local_listener(evaluator, toy_competition):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted = []

    def accept_once():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"leak")
    print("CONNECTED")
except OSError as err:
    print("BLOCKED", err)
raise SystemExit(1)
"""
    result = _run(evaluator, toy_competition, code)
    accept_once()
    listener.close()
    assert not result.valid and result.error == "crash"
    if os.geteuid() == 0:
        assert "BLOCKED" in result.feedback and accepted == []


NAMESPACE_PROBE = GOOD + """
print("pid", os.getpid())
print("netns", os.readlink("/proc/self/ns/net"))
"""


def test_every_solution_is_init_of_a_fresh_pid_namespace_off_the_host_network(evaluator, toy_competition):
    """The zygote forks each job straight into a new PID namespace and keeps one network namespace per slot."""
    host_network = os.readlink("/proc/self/ns/net")
    for run in range(3):  # more runs than workers: each slot serves several jobs
        result = _run(evaluator, toy_competition, NAMESPACE_PROBE + f"# run {run}\n")
        assert result.valid, result.feedback
        if not result.isolation["pid_namespace"]:
            pytest.skip("no namespaces here (not root): the fallback is tested separately")
        seen = dict(line.split(" ", 1) for line in result.feedback.splitlines() if line.startswith(("pid ", "netns ")))
        # pid 1: init of its namespace, so a fresh one (a PID namespace dies with its init) that takes every process
        # the solution starts down with it.
        assert seen["pid"] == "1"
        assert seen["netns"] != host_network


def test_killing_the_parent_fails_and_sandbox_survives(evaluator, toy_competition):
    me = os.getpid()
    zygotes = [w.process.pid for w in evaluator.sandbox._pool if w.process is not None]
    code = f"""
import os, signal
for pid in [os.getppid(), {me}, *{zygotes!r}, 1]:
    try:
        os.kill(pid, signal.SIGKILL)
        print("sent", pid)
    except OSError as err:
        print("refused", pid, type(err).__name__)
os.kill(-1, signal.SIGKILL)
"""
    result = _run(evaluator, toy_competition, code)
    assert not result.valid and result.error in ("crash", "killed_by_signal"), result.feedback
    # The caller and the pool are unharmed: the next solution on every worker still runs.
    results = evaluator.sandbox.run_many([(GOOD + f"# {i}\n", toy_competition.public_dir) for i in range(4)])
    assert all(r.exit_code == 0 for r in results)
    assert all(w.process.poll() is None for w in evaluator.sandbox._pool if w.process is not None)


def test_threads_are_not_blocked(evaluator, toy_competition):
    """A normal solution using a few threads still runs under the process limit."""
    code = "import threading\nts = [threading.Thread(target=sum, args=([1],)) for _ in range(4)]\n" \
           "[t.start() for t in ts]\n[t.join() for t in ts]\n" + GOOD
    assert _run(evaluator, toy_competition, code).valid
    assert threading.active_count() >= 1


def test_unprivileged_fallback_states_itself_and_still_kills(toy_competition):
    from exit_jax.domains.mle.sandbox import Sandbox

    with Sandbox(workers=1, limits=SHORT, isolate=False) as fallback:
        good = fallback.run(GOOD, toy_competition.public_dir)
        assert good.exit_code == 0 and good.submission_error is None
        assert good.isolation["mode"].startswith("fallback") and not good.isolation["uid_drop"]
        daemon = ("import os\nif os.fork() == 0:\n    os.setsid()\n"
                  "    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '600'])\n")
        loop = fallback.run(daemon + "while True:\n    pass\n", toy_competition.public_dir)
        assert loop.reason == "timeout"
        pid = fallback._pool[0].process.pid
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        assert children == []  # the loop and the daemon that left its process group were both killed


@pytest.mark.parametrize("edit, detail", [
    ("sub = sub.iloc[1:]", "rows"),
    ("sub = sub.rename(columns={'target': 'y'})", "columns"),
    ("sub['id'] = sub['id'] + 1", "ids"),
])
def test_wrong_rows_or_columns_through_the_sandbox_are_invalid(evaluator, toy_competition, edit, detail):
    code = GOOD.replace('pd.DataFrame({"id": test["id"], "target": 2 * test["x0"] - test["x1"]}).to_csv(',
                        'sub = pd.DataFrame({"id": test["id"], "target": 2 * test["x0"] - test["x1"]})\n'
                        + edit + '\nsub.to_csv(')
    assert code != GOOD
    result = _run(evaluator, toy_competition, code)
    assert not result.valid and result.error == "malformed_submission" and result.score is None
    assert detail in result.feedback


def test_memory_spread_over_processes_is_capped_for_the_whole_tree(evaluator, toy_competition):
    """Per-process address-space limits alone would allow 4 x 600 MB; the job's cgroup caps the tree at 1.5 GB."""
    if not evaluator.sandbox.isolation.get("cgroups"):
        pytest.skip("cgroups not writable here")
    code = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (600 << 20)
        time.sleep(1.0)
        os._exit(0)
    children.append(pid)
statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
print("children", statuses)
raise SystemExit(1 if any(code != 0 for code in statuses) else 0)
"""
    zygotes = [worker.process.pid for worker in evaluator.sandbox._pool]
    result = evaluator.evaluate(toy_competition, code, dataclasses.replace(SHORT, timeout_s=20.0))
    assert _live_processes({worker.uid for worker in evaluator.sandbox._pool}) == []
    assert not result.valid and result.error == "memory_limit", (result.error, result.feedback)
    assert "-9" in result.feedback  # the kernel OOM-killed inside the job's cgroup, not elsewhere on the host
    # The zygotes share the job's cgroup (they joined it once, so jobs start inside it); the OOM kill took a job
    # process, not the worker beside it.
    assert [worker.process.pid for worker in evaluator.sandbox._pool] == zygotes
    assert all(worker.process.poll() is None for worker in evaluator.sandbox._pool)


def test_every_process_of_a_job_is_charged_to_its_slots_cgroups(evaluator, toy_competition):
    """The solution and a child it forks are both members of the slot's memory and pids cgroups (read from the
    kernel's /proc/<pid>/cgroup of the zygote: same groups) and carry the maximal OOM score adjustment."""
    if not evaluator.sandbox.isolation.get("cgroups"):
        pytest.skip("cgroups not writable here")
    code = GOOD + """
import sys
def report(tag):
    groups = [line.split(":", 2) for line in open("/proc/self/cgroup").read().splitlines()]
    for _, controllers, path in groups:
        if controllers in ("memory", "pids"):
            print(tag, controllers, path)
    print(tag, "oom", open("/proc/self/oom_score_adj").read().strip())
    sys.stdout.flush()
report("parent")
pid = os.fork()
if pid == 0:
    report("child")
    os._exit(0)
os.waitpid(pid, 0)
"""
    result = _run(evaluator, toy_competition, code)
    assert result.valid, result.feedback
    lines = [line.split() for line in result.feedback.splitlines() if line.startswith(("parent ", "child "))]
    seen = {(tag, key): value for tag, key, value in lines}
    zygote_groups = {}
    for worker in evaluator.sandbox._pool:
        for line in open(f"/proc/{worker.process.pid}/cgroup").read().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers in ("memory", "pids"):
                assert f"_slot{worker.slot}" in path  # each zygote sits in its own slot's groups
                zygote_groups.setdefault(controllers, set()).add(path)
    for tag in ("parent", "child"):
        assert seen[(tag, "oom")] == "1000"
        for controller in ("memory", "pids"):
            assert seen[(tag, controller)] in zygote_groups[controller]


def test_cpu_time_and_wall_clock_are_separate_limits(evaluator, toy_competition):
    """With cpu_s < timeout_s (the embedded MLE default: 10 s of CPU, 30 s of wall clock), a solution that waits
    longer than cpu_s but burns little CPU is valid, and one that burns more than cpu_s of CPU is stopped by the CPU
    limit well before the wall clock runs out."""
    limits = dataclasses.replace(SHORT, cpu_s=1.0, timeout_s=8.0)
    waits = "import time\ntime.sleep(2.5)\n" + GOOD
    result = evaluator.evaluate(toy_competition, waits, limits)
    assert result.valid, (result.error, result.feedback)
    result = evaluator.evaluate(toy_competition, "while True:\n    pass\n", limits)
    assert not result.valid and result.error == "cpu_limit", (result.error, result.feedback)
    assert result.runtime_s < 6.0


SLOT_PROCESSES_SCRIPT = """
import os, sys, time
from exit_jax.domains.mle.zygote import Slot
slot = Slot(7, int(sys.argv[1]), sys.argv[2], 16)
if "pids" not in slot.cgroups:  # the fast path needs the pids group
    slot.remove_cgroups()
    print("no pids cgroup")
    raise SystemExit(0)
assert slot.processes() == []
pid = slot.fork_job()  # as a job is forked: inside the slot's cgroups
if pid == 0:
    os.setgid(int(sys.argv[1])); os.setuid(int(sys.argv[1]))
    time.sleep(30)
    os._exit(0)
deadline = time.monotonic() + 10
while os.stat(f"/proc/{pid}").st_uid != int(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.01)
seen = slot.processes()
slot.kill_all(pid)  # kills it and reaps it (the sweep collects exited children)
print("seen", seen == [pid], "after", slot.processes() == [])
slot.remove_cgroups()
"""


def test_slot_process_listing_sees_a_live_job_and_then_none(tmp_path):
    """``Slot.processes`` (which skips the /proc scan when the slot's pids cgroup holds only the zygote) finds a
    live process of the slot's uid, and none once it is killed. Run in a child interpreter: a Slot unshares the
    mount and network namespaces of the process that makes it."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs root (uid drop, cgroups)")
    uid = 64000 + os.getpid() % 1000
    done = subprocess.run([sys.executable, "-c", SLOT_PROCESSES_SCRIPT, str(uid), str(tmp_path / "slot")],
                          capture_output=True, text=True, timeout=60, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "no pids cgroup":
        pytest.skip("no writable pids cgroup here")
    assert done.stdout.split() == ["seen", "True", "after", "True"]


def test_the_zygotes_preimported_memory_sits_in_huge_pages(sandbox):
    """Each zygote asks for its anonymous memory in 2 MiB pages after the imports (fewer page-table entries for
    every job's fork and exit to copy and unmap); where the kernel offers transparent huge pages and
    MADV_COLLAPSE (Linux >= 6.1), the kernel's own accounting shows them."""
    import re

    try:
        mode = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        pytest.skip("no transparent huge pages here")
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if "[never]" in mode or release < (6, 1):
        pytest.skip(f"THP {mode.strip()} on Linux {os.uname().release}")
    for worker in sandbox._pool:
        worker.ready()
        rollup = open(f"/proc/{worker.process.pid}/smaps_rollup").read()
        huge_kb = int(re.search(r"AnonHugePages:\s+(\d+) kB", rollup).group(1))
        anon_kb = int(re.search(r"Anonymous:\s+(\d+) kB", rollup).group(1))
        assert huge_kb >= 16 << 10 and huge_kb <= anon_kb, (huge_kb, anon_kb)
