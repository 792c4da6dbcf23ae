"""The slot's memory and pids groups on both cgroup versions.

This machine is a cgroup v1 host (its unified hierarchy carries no memory or pids controller), where the real path is
exercised by the sandbox's memory-bomb and process tests. The v2 path runs here on a fake tree laid out as the
kernel's: ``cgroup.controllers`` / ``cgroup.subtree_control`` per group, ``memory.events`` counters, and a group whose
``cgroup.subtree_control`` refuses writes (a directory in the fake) the way a group holding processes does.
"""

from __future__ import annotations

import os
from pathlib import Path

from exit_jax.domains.mle.cgroups import open_slot_cgroups


def _fake_v2(tmp_path: Path, own: str, session_has_processes: bool = True) -> tuple[Path, Path, Path]:
    mount = tmp_path / "cgroup"
    session = mount / own.strip("/")
    session.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (mount / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    user_slice = session.parent
    (user_slice / "cgroup.controllers").write_text("cpu io memory pids\n")
    (user_slice / "cgroup.subtree_control").write_text("memory pids\n")
    (session / "cgroup.controllers").write_text("cpu io memory pids\n")
    if session_has_processes:
        (session / "cgroup.subtree_control").mkdir()  # a write fails, as with EBUSY
    else:
        (session / "cgroup.subtree_control").write_text("")
    (session / "cgroup.procs").write_text("1\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "25 30 0:23 / /proc rw,nosuid - proc proc rw\n"
        f"31 23 0:28 / {mount} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
    proc_cgroup = tmp_path / "cgroup.self"
    proc_cgroup.write_text(f"0::{own}\n")
    return mount, proc_cgroup, mountinfo


def test_v2_group_goes_under_the_nearest_ancestor_with_the_controllers(tmp_path):
    own = "/user.slice/user-1000.slice/session-1.scope"
    mount, proc_cgroup, mountinfo = _fake_v2(tmp_path, own)
    groups, note = open_slot_cgroups(3, proc_cgroup=str(proc_cgroup), mountinfo=str(mountinfo))
    assert note == "" and groups is not None and groups.version == 2
    expected = mount / "user.slice" / "user-1000.slice" / f"exit_jax_{os.getpid()}_slot3"
    assert groups.directories == {"memory": str(expected), "pids": str(expected)}
    assert (expected / "cgroup.procs").read_text() == str(os.getpid())  # the zygote joined it
    assert "memory" in groups and "pids" in groups and groups.describe() == {"cgroup_version": 2,
                                                                            "cgroups": ["memory", "pids"]}
    # Limits for a job: the whole tree's memory (no swap), the task count.
    (expected / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
    groups.set_limits(1500 << 20, 33)
    assert (expected / "memory.max").read_text() == str(1500 << 20)
    assert (expected / "memory.swap.max").read_text() == "0"
    assert (expected / "pids.max").read_text() == "33"
    assert not groups.memory_limit_hit()  # counters as they were when the limits were set
    (expected / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert groups.memory_limit_hit()  # an OOM kill since
    groups.set_limits(1500 << 20, 33)
    (expected / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert groups.memory_limit_hit()  # the limit was reached (reclaim) since
    (expected / "pids.current").write_text("5\n")
    assert groups.pids_current() == 5
    groups.remove()
    assert (mount / own.strip("/") / "cgroup.procs").read_text() == str(os.getpid())  # back where it came from


def test_v2_enables_the_controllers_where_it_may(tmp_path):
    """An ancestor without the controllers in its subtree_control gets them written; the group goes there."""
    own = "/system.slice/trainer.service"
    mount, proc_cgroup, mountinfo = _fake_v2(tmp_path, own)
    (mount / "system.slice" / "cgroup.subtree_control").write_text("")
    groups, note = open_slot_cgroups(0, proc_cgroup=str(proc_cgroup), mountinfo=str(mountinfo))
    assert groups is not None and groups.version == 2, note
    assert (mount / "system.slice" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert groups.directories["memory"] == str(mount / "system.slice" / f"exit_jax_{os.getpid()}_slot0")


def test_v2_root_group_is_used_directly(tmp_path):
    mount, proc_cgroup, mountinfo = _fake_v2(tmp_path, "/a/b")
    proc_cgroup.write_text("0::/\n")
    groups, _ = open_slot_cgroups(1, proc_cgroup=str(proc_cgroup), mountinfo=str(mountinfo))
    assert groups.directories["pids"] == str(mount / f"exit_jax_{os.getpid()}_slot1")


def test_v2_without_usable_controllers_says_why(tmp_path):
    own = "/user.slice/user-1000.slice/session-1.scope"
    mount, proc_cgroup, mountinfo = _fake_v2(tmp_path, own)
    for directory in (mount, mount / "user.slice", mount / "user.slice" / "user-1000.slice"):
        (directory / "cgroup.controllers").write_text("cpu io\n")
        (directory / "cgroup.subtree_control").write_text("cpu\n")
    groups, note = open_slot_cgroups(0, proc_cgroup=str(proc_cgroup), mountinfo=str(mountinfo))
    assert groups is None and "cgroup v2" in note and "memory and pids" in note


def test_no_hierarchy_is_reported(tmp_path):
    (tmp_path / "mountinfo").write_text("25 30 0:23 / /proc rw,nosuid - proc proc rw\n")
    (tmp_path / "cgroup.self").write_text("0::/\n")
    groups, note = open_slot_cgroups(0, proc_cgroup=str(tmp_path / "cgroup.self"),
                                     mountinfo=str(tmp_path / "mountinfo"))
    assert groups is None and "no cgroup hierarchy" in note


def test_this_host_picks_the_hierarchy_that_carries_the_controllers():
    """On this host, in a child (joining moves the process): v1 where v1 carries memory and pids, else v2."""
    import subprocess
    import sys

    if os.geteuid() != 0:
        return
    script = ("from exit_jax.domains.mle.cgroups import open_slot_cgroups\n"
              "g, note = open_slot_cgroups(9)\n"
              "print(g.version if g else 0, sorted(g.directories) if g else note)\n"
              "g and g.remove()\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[3]).stdout
    lines = open("/proc/self/mountinfo").read().splitlines()
    v1 = {c for line in lines if " - cgroup " in line for c in line.rsplit(" ", 1)[-1].split(",")}
    unified = [line.split()[4] for line in lines if " - cgroup2 " in line]
    v2 = set(open(os.path.join(unified[0], "cgroup.controllers")).read().split()) if unified else set()
    expected = "1" if {"memory", "pids"} & v1 else ("2" if {"memory", "pids"} <= v2 else "0")
    assert out.split()[0] == expected, out
