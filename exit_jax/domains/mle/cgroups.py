"""A sandbox slot's memory and pids cgroups, on cgroup v1 or cgroup v2 hosts.

rlimits are per process, so a job that starts 64 processes of 4 GB each could exhaust the host without a group limit
over its whole process tree. Each zygote makes one group per controller for its slot, joins it once (every job it
forks is then born inside), sets the limits before each job and reads back whether the job's tree hit them.

- **cgroup v1** (a hierarchy per controller, e.g. ``/sys/fs/cgroup/memory``): the slot's groups nest under the
  zygote's own group in each hierarchy, so outer limits still hold. Limits: ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes`` where swap accounting is on), ``pids.max``; a hit: ``memory.failcnt`` or the
  ``oom_kill`` counter of ``memory.oom_control``.
- **cgroup v2** (one unified hierarchy; the default on current Ubuntu images, Cloud TPU VMs included): a group with
  controllers enabled for its children may hold no processes of its own (the "no internal processes" rule), and the
  zygote's own group holds the trainer. The slot's group is therefore made under the nearest ancestor of the
  zygote's group that has (or can be given) ``memory`` and ``pids`` in its ``cgroup.subtree_control``: the root, a
  systemd slice, a delegated subtree. Limits: ``memory.max``, ``memory.swap.max`` = 0, ``pids.max``; a hit: the
  ``max`` or ``oom_kill`` counters of ``memory.events`` since the limits were set.

Where neither hierarchy is writable (not root, a container without delegation), ``open_slot_cgroups`` returns None
and a reason; the sandbox reports it in ``isolation`` and the trainer refuses to run on it unless told to.
Paths are parameters (``root``, ``proc_cgroup``, ``mountinfo``) so both versions are testable on a fake tree.
"""

from __future__ import annotations

import os

CONTROLLERS = ("memory", "pids")


def write_file(path: str, value: str) -> bool:
    try:
        with open(path, "w") as handle:
            handle.write(value)
        return True
    except OSError:
        return False


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _counters(path: str) -> dict[str, int]:
    """``key value`` lines (``memory.events``, ``memory.oom_control``) as integers; empty when unreadable."""
    fields = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            fields[parts[0]] = int(parts[1])
    return fields


def _mounts(mountinfo: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of each cgroup / cgroup2 mount in a mountinfo file."""
    found = []
    for line in (_read(mountinfo) or "").splitlines():
        if " - " not in line:
            continue
        before, after = line.split(" - ", 1)
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


class SlotCgroups:
    """The memory and pids groups of one slot, joined by the calling process (the zygote).

    ``directories`` maps each controller to its group's directory (the same directory for both on cgroup v2).
    """

    def __init__(self, version: int, directories: dict[str, str], home: dict[str, str]):
        self.version = version
        self.directories = directories
        self._home = home  # controller -> the group the zygote came from (it returns there before removal)
        self._events_at_start: dict[str, int] = {}

    def __contains__(self, controller: str) -> bool:
        return controller in self.directories

    def __bool__(self) -> bool:
        return bool(self.directories)

    def describe(self) -> dict[str, object]:
        return {"cgroup_version": self.version, "cgroups": sorted(self.directories)}

    def set_limits(self, memory_bytes: int, pids_max: int) -> None:
        """Limits for the next job: ``memory_bytes`` for its whole tree, at most ``pids_max`` tasks in the group."""
        if "memory" in self.directories:
            group, value = self.directories["memory"], str(int(memory_bytes))
            if self.version == 1:
                ram = os.path.join(group, "memory.limit_in_bytes")
                ram_swap = os.path.join(group, "memory.memsw.limit_in_bytes")
                # RAM + swap must stay >= RAM: lower RAM first when shrinking, raise RAM + swap first when growing.
                if write_file(ram, value):
                    write_file(ram_swap, value)
                else:
                    write_file(ram_swap, value)
                    write_file(ram, value)
                write_file(os.path.join(group, "memory.failcnt"), "0")
                self._events_at_start = {"oom_kill": _counters(os.path.join(group, "memory.oom_control"))
                                         .get("oom_kill", 0)}
            else:
                write_file(os.path.join(group, "memory.max"), value)
                write_file(os.path.join(group, "memory.swap.max"), "0")  # absent without swap accounting
                self._events_at_start = _counters(os.path.join(group, "memory.events"))
        if "pids" in self.directories:
            write_file(os.path.join(self.directories["pids"], "pids.max"), str(int(pids_max)))

    def memory_limit_hit(self) -> bool:
        """Whether the job's tree hit the memory limit since ``set_limits`` (a failed charge or an OOM kill)."""
        if "memory" not in self.directories:
            return False
        group = self.directories["memory"]
        if self.version == 1:
            failed = (_read(os.path.join(group, "memory.failcnt")) or "0").strip()
            oom = _counters(os.path.join(group, "memory.oom_control")).get("oom_kill", 0)
            return (failed.isdigit() and int(failed) > 0) or oom > self._events_at_start.get("oom_kill", 0)
        events = _counters(os.path.join(group, "memory.events"))
        return any(events.get(name, 0) > self._events_at_start.get(name, 0) for name in ("max", "oom_kill"))

    def pids_current(self) -> int | None:
        """Tasks in the slot's pids group (the zygote's threads included); None without a pids group."""
        if "pids" not in self.directories:
            return None
        text = (_read(os.path.join(self.directories["pids"], "pids.current")) or "").strip()
        return int(text) if text.isdigit() else None

    def remove(self) -> None:
        """Move the zygote back to where it came from and remove the slot's groups."""
        for controller in self.directories:
            write_file(os.path.join(self._home[controller], "cgroup.procs"), str(os.getpid()))
        for directory in set(self.directories.values()):
            try:
                os.rmdir(directory)
            except OSError:
                pass


def _join(directory: str) -> bool:
    return write_file(os.path.join(directory, "cgroup.procs"), str(os.getpid()))


def _open_v1(slot: int, mounts, own: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    directories, home = {}, {}
    for mount_point, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for controller in CONTROLLERS:
            if controller not in options or controller in directories or controller not in own:
                continue
            current = mount_point + own[controller].rstrip("/")
            directory = f"{current}/exit_jax_{os.getpid()}_slot{slot}"
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError:
                continue
            if _join(directory):
                directories[controller], home[controller] = directory, current
            else:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
    return directories, home


def _enabled(directory: str) -> set[str]:
    return {name.lstrip("+") for name in (_read(os.path.join(directory, "cgroup.subtree_control")) or "").split()}


def _has_controllers(directory: str) -> bool:
    """Whether ``directory``'s children get the memory and pids controllers (enabling them where permitted)."""
    enabled = _enabled(directory)
    if set(CONTROLLERS) <= enabled:
        return True
    available = set((_read(os.path.join(directory, "cgroup.controllers")) or "").split())
    if not set(CONTROLLERS) <= available:
        return False
    if not write_file(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in CONTROLLERS)):
        return False  # e.g. the group holds processes of its own
    return set(CONTROLLERS) <= _enabled(directory)


def _open_v2(slot: int, mount_point: str, path: str) -> tuple[dict[str, str], dict[str, str]]:
    root = mount_point.rstrip("/") or "/"
    current = os.path.join(root, path.strip("/")).rstrip("/") if path.strip("/") else root
    # The zygote's own group may enable controllers for children only if it is the hierarchy's root (which is
    # exempt from the no-internal-processes rule); otherwise the nearest ancestor that has them takes the group.
    chain, node = [], current
    if node == root:
        chain.append(root)
    while node != root and node.startswith(root):
        node = os.path.dirname(node)
        chain.append(node)
    parent = next((candidate for candidate in chain if _has_controllers(candidate)), None)
    if parent is None:
        return {}, {}
    directory = os.path.join(parent, f"exit_jax_{os.getpid()}_slot{slot}")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return {}, {}
    if not _join(directory):
        try:
            os.rmdir(directory)
        except OSError:
            pass
        return {}, {}
    return {c: directory for c in CONTROLLERS}, {c: current for c in CONTROLLERS}


def open_slot_cgroups(slot: int, proc_cgroup: str = "/proc/self/cgroup",
                      mountinfo: str = "/proc/self/mountinfo") -> tuple[SlotCgroups | None, str]:
    """Make the slot's memory and pids groups and move this process into them.

    cgroup v1 is used when its hierarchies carry both controllers (a hybrid host's unified hierarchy then has none
    of them); otherwise the unified (v2) hierarchy. Returns (groups, "") or (None, why none could be used).
    """
    text = _read(proc_cgroup)
    if text is None:
        return None, f"{proc_cgroup} is not readable"
    own_v1, own_v2 = {}, None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            own_v2 = path
        for controller in controllers.split(","):
            own_v1[controller] = path
    mounts = _mounts(mountinfo)
    v1_controllers = {c for _, fstype, options in mounts if fstype == "cgroup" for c in options} & set(CONTROLLERS)
    if v1_controllers and set(own_v1) & v1_controllers:
        directories, home = _open_v1(slot, mounts, own_v1)
        if directories:
            return SlotCgroups(1, directories, home), ""
        return None, "cgroup v1 hierarchies are mounted but not writable here (needs root)"
    unified = [mount_point for mount_point, fstype, _ in mounts if fstype == "cgroup2"]
    if unified and own_v2 is not None:
        directories, home = _open_v2(slot, unified[0], own_v2)
        if directories:
            return SlotCgroups(2, directories, home), ""
        return None, (f"cgroup v2 at {unified[0]}: no ancestor of {own_v2} can enable the memory and pids "
                      "controllers for a child group, or it is not writable (needs root or a delegated subtree)")
    return None, "no cgroup hierarchy with the memory and pids controllers is mounted"
