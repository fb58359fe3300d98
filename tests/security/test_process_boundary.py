"""The process boundary: how a sandbox process is started.

Every sandbox process runs under a seccomp filter (keyrings, new namespaces, mounts, tracing, eBPF,
perf, io_uring, kexec, modules… are refused), inherits no descriptor from the gateway (even under
uvloop, which ignores `close_fds`), cannot read host paths from /proc/1/cmdline, has a hostname of
its own, and the cgroups and run directories of a gateway that died are reaped by the next one,
never those of a gateway still running.

The syscall probes call each syscall with arguments the kernel would reject with another errno
(EFAULT, EBADF, EINVAL…) or accept, so an EPERM (ENOSYS for clone3) can only come from the filter.
Numbers are x86_64's. unshare goes last: where it succeeds the prober is in a new user namespace.
"""

import asyncio
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from corral.sessions.backends.local import LocalSandboxBackend
from corral.sessions.backends.local.backend import RUN_BASE
from corral.sessions.backends.local.limits import LimitEnforcer

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the syscall probes use x86_64 numbers"),
]

PROBE = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(number, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *(a if isinstance(a, bytes) else ctypes.c_long(a) for a in args))
    if result == -1:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    if number == 56:
        if result == 0:
            os._exit(0)
        os.waitpid(result, 0)
    return "OK"

me = os.getpid()
PROBES = {
    "keyctl": (250, 0x7FFF, 0, 0),
    "add_key": (248, b"user", b"corral-probe", b"v", 1, -4),
    "request_key": (249, b"user", b"corral-missing", 0, 0),
    "setns": (308, -1, 0),
    "clone_newuser": (56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone_newns": (56, 0x00020000 | 17, 0, 0, 0, 0),
    "clone3": (435, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "umount2": (166, 0, 0),
    "pivot_root": (155, 0, 0),
    "chroot": (161, 0),
    "fsopen": (430, 0, 0),
    "fsconfig": (431, -1, 0, 0, 0, 0),
    "fsmount": (432, -1, 0, 0),
    "fspick": (433, -1, 0, 0),
    "move_mount": (429, -1, 0, -1, 0, 0),
    "open_tree": (428, -1, 0, 0),
    "mount_setattr": (442, -1, 0, 0, 0, 0),
    "ptrace": (101, -1, 0, 0, 0),
    "process_vm_readv": (310, me, 0, 0, 0, 0, 0),
    "process_vm_writev": (311, me, 0, 0, 0, 0, 0),
    "kcmp": (312, me, me, 0, 0, 0),
    "bpf": (321, -1, 0, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "io_uring_setup": (425, 0, 0),
    "io_uring_enter": (426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": (427, -1, 0, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "kexec_file_load": (320, -1, -1, 0, 0, 0),
    "init_module": (175, 0, 0, 0),
    "finit_module": (313, -1, 0, 0),
    "delete_module": (176, 0, 0),
    "userfaultfd": (323, 1),
    "open_by_handle_at": (304, -1, 0, 0),
    "name_to_handle_at": (303, -100, 0, 0, 0, 0),
    "swapon": (167, 0, 0),
    "swapoff": (168, 0),
    "reboot": (169, 0, 0, 0, 0),
    "acct": (163, 0),
    "quotactl": (179, 0, 0, 0, 0),
    "quotactl_fd": (443, -1, 0, 0, 0),
    "syslog": (103, 10, 0, 0),
    "unshare": (272, 0x10000000),
}
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps({"seccomp": status.get("Seccomp", "").strip(), **{n: call(*p) for n, p in PROBES.items()}}))
"""

REACHABLE_WITHOUT_PRIVILEGE = [
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "clone_newuser",
    "mount",
    "umount2",
    "chroot",
    "fsconfig",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
]
"""Probes an unfiltered unprivileged process sees succeed or fail with another errno than EPERM."""

CAPABILITY_GUARDED = ["clone_newns", "pivot_root", "fsopen", "fsmount", "fspick", "move_mount"]
CAPABILITY_GUARDED += ["swapon", "swapoff", "reboot", "acct", "syslog"]
"""Probes the kernel itself answers EPERM to an unprivileged caller: only the filter's presence shows
that they are refused by it too."""


@dataclass
class Leftovers:
    """Run and cgroup directories named as a gateway process would name them."""

    owner: subprocess.Popen[bytes]
    run_dir: Path
    cgroups: list[Path]
    member: subprocess.Popen[bytes] | None = None


def _owner_tag(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"


def _make_leftovers(bases: list[Path], *, with_member: bool) -> Leftovers:
    owner = subprocess.Popen(["sleep", "600"])
    tag, name = _owner_tag(owner.pid), secrets.token_hex(6)
    run_dir = RUN_BASE / tag / name
    run_dir.mkdir(parents=True)
    (run_dir / "kernel.log").write_text("left behind")
    leftovers = Leftovers(owner, run_dir, [base / f"corral-{tag}-{name}" for base in bases])
    if with_member:
        leftovers.member = subprocess.Popen(["sleep", "600"])
    for directory in leftovers.cgroups:
        directory.mkdir()
        if leftovers.member is not None:
            (directory / "cgroup.procs").write_text(str(leftovers.member.pid))
    return leftovers


def _discard(leftovers: Leftovers) -> None:
    for process in (leftovers.owner, leftovers.member):
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
    for directory in leftovers.cgroups:
        if directory.exists():
            directory.rmdir()
    shutil.rmtree(leftovers.run_dir.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def leftovers() -> Iterator[dict[str, Leftovers]]:
    """One gateway that died (its cgroups still hold a process) and one that runs, both with leftovers;
    made before the module's backend starts."""
    enforcer = LimitEnforcer()
    bases = [enforcer.v2_base] if enforcer.v2_base is not None else list(enforcer.v1_bases.values())
    dead = _make_leftovers(bases, with_member=True)
    live = _make_leftovers(bases, with_member=False)
    dead.owner.kill()
    dead.owner.wait()
    yield {"dead": dead, "live": live}
    _discard(dead)
    _discard(live)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backend(
    sandbox_python: str, tmp_path_factory: pytest.TempPathFactory, leftovers: dict[str, Leftovers]
) -> AsyncIterator[LocalSandboxBackend]:
    backend = LocalSandboxBackend(
        tmp_path_factory.mktemp("process-boundary"), python=sandbox_python, warm_pool_size=0, output_limit=65536
    )
    await backend.start()
    await backend.create("pb_a")
    yield backend
    await backend.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def probes(backend: LocalSandboxBackend) -> dict[str, str]:
    result = await backend.run_shell("pb_a", f"python3 - <<'PROBE'\n{PROBE}\nPROBE", timeout_s=60)
    assert result.exit_code == 0, result.stderr
    answers: dict[str, str] = json.loads(result.stdout)
    return answers


@pytest.mark.parametrize("name", REACHABLE_WITHOUT_PRIVILEGE)
async def test_kernel_surface_is_refused(probes: dict[str, str], name: str) -> None:
    assert probes[name] == "EPERM"


async def test_every_sandbox_process_runs_under_the_filter(
    backend: LocalSandboxBackend, probes: dict[str, str]
) -> None:
    assert probes["seccomp"] == "2"
    assert {name: probes[name] for name in CAPABILITY_GUARDED} == dict.fromkeys(CAPABILITY_GUARDED, "EPERM")
    assert probes["clone3"] == "ENOSYS"
    kernel = await backend.run_python(
        "pb_a", "print([l for l in open('/proc/self/status') if l.startswith('Seccomp:')][0].split()[1])", timeout_s=30
    )
    assert kernel.stdout.strip() == "2"


async def test_keys_cannot_be_added_or_read(backend: LocalSandboxBackend) -> None:
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "key = libc.syscall(248, b'user', b'corral-shared', b'secret', 6, -4)\n"
        "print(key, ctypes.get_errno())\n"
    )
    result = await backend.run_python("pb_a", code, timeout_s=30)
    assert result.stdout.split() == ["-1", "1"]
    keyctl = await backend.run_shell("pb_a", "command -v keyctl >/dev/null || exit 0; keyctl show @u", timeout_s=10)
    assert "corral-shared" not in keyctl.stdout


async def test_user_namespaces_and_mounts_are_unreachable(backend: LocalSandboxBackend) -> None:
    result = await backend.run_shell(
        "pb_a", "unshare -Urm sh -c 'mount -t tmpfs none /mnt && echo MOUNTED'; echo exit=$?", timeout_s=10
    )
    assert "MOUNTED" not in result.stdout
    assert "exit=0" not in result.stdout
    plain = await backend.run_python(
        "pb_a",
        "import subprocess, threading\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n",
        timeout_s=30,
    )
    assert plain.stdout == "thread\nchild\n", plain.stderr


async def test_proc_cmdline_shows_no_host_path(backend: LocalSandboxBackend, sandbox_python: str) -> None:
    host_paths = [str(backend.base.parent), str(Path(sandbox_python).parent.parent), str(RUN_BASE)]
    shell = await backend.run_shell(
        "pb_a", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done", timeout_s=10
    )
    kernel = await backend.run_python(
        "pb_a", "import glob\nfor f in glob.glob('/proc/[0-9]*/cmdline'): print(open(f).read())", timeout_s=30
    )
    assert "bwrap" in shell.stdout and "bwrap" in kernel.stdout
    for seen in (shell.stdout, kernel.stdout):
        for path in host_paths:
            assert path not in seen


async def test_hostname_is_the_sandboxes_own(backend: LocalSandboxBackend) -> None:
    result = await backend.run_shell("pb_a", "cat /proc/sys/kernel/hostname", timeout_s=10)
    assert result.stdout.strip() == "sandbox"
    assert result.stdout.strip() != socket.gethostname()


def _fd_scenario(python: str, data_dir: Path, secret: Path) -> dict[str, Any]:
    """A gateway under uvloop holding an inheritable descriptor on a secret file starts a sandbox."""
    import uvloop

    async def scenario() -> dict[str, Any]:
        held = os.open(secret, os.O_RDONLY)
        os.set_inheritable(held, True)
        backend = LocalSandboxBackend(data_dir, python=python, warm_pool_size=0)
        try:
            await backend.start()
            await backend.create("pb_fd")
            shell = await backend.run_shell(
                "pb_fd",
                "ls -l /proc/self/fd; cat /proc/self/fd/* 2>/dev/null",
                timeout_s=20,
            )
            kernel = await backend.run_python(
                "pb_fd",
                "import os\n"
                "for fd in os.listdir('/proc/self/fd'):\n"
                "    try: print(fd, os.readlink(f'/proc/self/fd/{fd}'), os.pread(int(fd), 100, 0))\n"
                "    except OSError: pass\n",
                timeout_s=30,
            )
            return {"loop": type(asyncio.get_running_loop()).__module__, "shell": shell, "kernel": kernel}
        finally:
            await backend.aclose()
            os.close(held)

    return uvloop.run(scenario())


async def test_no_gateway_descriptor_crosses_into_a_sandbox(
    sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pytest.importorskip("uvloop")
    secret = tmp_path_factory.mktemp("gateway") / "gateway-secret.txt"
    secret.write_text("GATEWAY-SECRET")
    seen = await asyncio.to_thread(_fd_scenario, sandbox_python, tmp_path_factory.mktemp("fd-boundary"), secret)
    assert seen["loop"].startswith("uvloop")
    listing = [line.split() for line in seen["shell"].stdout.splitlines() if " -> " in line]
    shell_fds = {fields[-3] for fields in listing if not fields[-1].startswith("/proc/")}
    assert shell_fds == {"0", "1", "2"}, seen["shell"].stdout
    for output in (seen["shell"].stdout, seen["kernel"].stdout):
        assert "GATEWAY-SECRET" not in output
        assert secret.name not in output


async def test_leftovers_of_a_dead_gateway_are_reaped_and_a_live_ones_kept(
    backend: LocalSandboxBackend, leftovers: dict[str, Leftovers]
) -> None:
    dead, live = leftovers["dead"], leftovers["live"]
    assert not dead.run_dir.parent.exists()
    assert dead.cgroups and not any(directory.exists() for directory in dead.cgroups)
    assert dead.member is not None
    assert await asyncio.to_thread(dead.member.wait, 10) == -9
    assert (live.run_dir / "kernel.log").read_text() == "left behind"
    assert all(directory.is_dir() for directory in live.cgroups)
    assert live.owner.poll() is None
