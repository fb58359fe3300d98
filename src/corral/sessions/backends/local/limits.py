"""Per-container resource limits: cgroup v2, cgroup v1, or rlimits where neither is writable.

A sandbox joins its cgroups before it drops privileges: the spawner is a shell, which writes its
own pid into each `cgroup.procs` and then execs bubblewrap and the privilege drop, so every
process of the sandbox is counted and limited.

Cgroups (and run directories, see process.py) carry the owner tag of the gateway process that made
them, `<pid>-<start time>`: a gateway that crashed leaves them behind, and the next one to start
recognises them as a dead process's (the start time tells a reused pid apart) and removes them,
while those of gateways still running on the host are left alone.
"""

import functools
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_PIDS = 256
DEFAULT_CPU_SHARES = 512
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
OWNER_PATTERN = r"(?P<pid>[0-9]+)-(?P<start>[0-9]+)"
_CGROUP_NAME = re.compile(rf"corral-(?P<owner>{OWNER_PATTERN})-[0-9a-f]+")


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks after boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_tag() -> str:
    """This gateway process's name in its cgroups and run directories."""
    return _owner_tag(os.getpid())


@functools.cache
def _owner_tag(pid: int) -> str:
    return f"{pid}-{process_start(pid) or 0}"


def owner_alive(tag: str) -> bool:
    """Whether the gateway process a tag names still runs (a tag that names none counts as alive)."""
    pid, _, start = tag.partition("-")
    if not (pid.isdigit() and start.isdigit()):
        return True
    return process_start(int(pid)) == int(start)


def parse_memory(limit: str) -> int:
    """`1g`, `512m`… in bytes."""
    text = limit.strip().lower()
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


@dataclass
class Limits:
    memory_bytes: int
    pids: int = DEFAULT_PIDS
    cpu_shares: int = DEFAULT_CPU_SHARES


@dataclass
class CgroupSet:
    """The cgroup directories of one sandbox and the files its processes join through."""

    directories: list[Path] = field(default_factory=list)
    rlimits: list[str] = field(default_factory=list)

    def join_script(self) -> str:
        return "".join(f'echo $$ > "{directory}/cgroup.procs" && ' for directory in self.directories)

    def saturated(self) -> bool:
        """Whether the process limit is (nearly) exhausted, e.g. by a fork bomb."""
        for directory in self.directories:
            current, limit = directory / "pids.current", directory / "pids.max"
            try:
                maximum = limit.read_text().strip()
                if maximum != "max" and int(current.read_text()) >= int(maximum) - 2:
                    return True
            except (OSError, ValueError):
                continue
        return False

    def kill_all(self) -> None:
        for directory in self.directories:
            _kill_members(directory)

    def remove(self) -> bool:
        """Kill every process in the cgroups and remove them; whether all are gone."""
        gone = True
        for directory in self.directories:
            for _ in range(50):
                _kill_members(directory)
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                gone = False
        return gone


def _kill_members(directory: Path) -> None:
    try:
        for pid in (directory / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
    except OSError:
        pass


def _own_cgroup(controller: str) -> Path | None:
    """This process's cgroup for a v1 controller ('' for the v2 unified hierarchy)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _hierarchy, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = CGROUP_ROOT / controller
            if not base.is_dir():
                base = CGROUP_ROOT / controllers.split(",")[0]
            return base / path.lstrip("/")
        if controller == "" and controllers == "":
            return CGROUP_ROOT / path.lstrip("/")
    return None


def _writable(directory: Path | None) -> bool:
    if directory is None or not directory.is_dir():
        return False
    probe = directory / f"corral-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


class LimitEnforcer:
    """Detects once what this host allows, then makes cgroups per sandbox."""

    def __init__(self) -> None:
        self.v2_base: Path | None = None
        self.v1_bases: dict[str, Path] = {}
        unified = _own_cgroup("")
        if unified is not None and (unified / "cgroup.controllers").exists() and _writable(unified):
            controllers = (unified / "cgroup.controllers").read_text().split()
            if "memory" in controllers and "pids" in controllers:
                self.v2_base = unified
                try:
                    (unified / "cgroup.subtree_control").write_text("+memory +pids +cpu")
                except OSError:
                    pass
        if self.v2_base is None:
            for controller in ("memory", "pids", "cpu"):
                base = _own_cgroup(controller)
                if _writable(base):
                    assert base is not None
                    self.v1_bases[controller] = base
        log.info("sandbox limits: %s", self.describe())

    def describe(self) -> str:
        if self.v2_base is not None:
            return f"cgroup v2 at {self.v2_base}"
        if self.v1_bases:
            missing = {"memory", "pids", "cpu"} - set(self.v1_bases)
            text = "cgroup v1 (" + ", ".join(sorted(self.v1_bases)) + ")"
            return text + (f"; rlimits for {', '.join(sorted(missing))}" if missing else "")
        return "rlimits only (no writable cgroup)"

    def create(self, name: str, limits: Limits) -> CgroupSet:
        group = CgroupSet()
        if self.v2_base is not None:
            directory = self.v2_base / f"corral-{owner_tag()}-{name}"
            directory.mkdir(exist_ok=True)
            _write(directory / "memory.max", str(limits.memory_bytes))
            _write(directory / "memory.swap.max", "0")
            _write(directory / "pids.max", str(limits.pids))
            _write(directory / "cpu.weight", str(max(1, limits.cpu_shares * 100 // 1024)))
            group.directories.append(directory)
            return group
        settings = {
            "memory": [
                ("memory.limit_in_bytes", limits.memory_bytes),
                ("memory.memsw.limit_in_bytes", limits.memory_bytes),
            ],
            "pids": [("pids.max", limits.pids)],
            "cpu": [("cpu.shares", limits.cpu_shares)],
        }
        for controller, values in settings.items():
            base = self.v1_bases.get(controller)
            if base is None:
                continue
            directory = base / f"corral-{owner_tag()}-{name}"
            directory.mkdir(exist_ok=True)
            for filename, value in values:
                _write(directory / filename, str(value))
            group.directories.append(directory)
        if "memory" not in self.v1_bases:
            group.rlimits.append(f"--as={limits.memory_bytes}")
        if "pids" not in self.v1_bases and os.getuid() != 0:
            group.rlimits.append(f"--nproc={limits.pids}")
        return group

    def bases(self) -> list[Path]:
        return [self.v2_base] if self.v2_base is not None else list(self.v1_bases.values())

    def reap_orphans(self) -> list[str]:
        """Kill the processes of, and remove, the cgroups that gateway processes no longer alive left
        behind. Blocking; returns the directories removed."""
        removed: list[str] = []
        for base in self.bases():
            try:
                entries = list(base.iterdir())
            except OSError:
                continue
            for entry in entries:
                match = _CGROUP_NAME.fullmatch(entry.name)
                if match is None or owner_alive(match["owner"]) or not entry.is_dir():
                    continue
                if CgroupSet([entry]).remove():
                    removed.append(str(entry))
                else:
                    log.warning("could not remove the leftover cgroup %s", entry)
        return removed

    @staticmethod
    def rlimit_prefix(group: CgroupSet) -> list[str]:
        if not group.rlimits:
            return []
        return [shutil.which("prlimit") or "prlimit", *group.rlimits, "--"]


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        if not path.name.startswith("memory.memsw") and path.name != "memory.swap.max":
            log.warning("could not set %s: %s", path, exc)
