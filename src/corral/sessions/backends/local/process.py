"""Starting one sandboxed process: close inherited descriptors, join the cgroups, apply rlimits,
bubblewrap with its syscall filter, drop privileges.

The spawner is a small bash script rather than a Python `preexec_fn` or `close_fds`: the gateway
runs under uvloop, which ignores `close_fds`, so any descriptor the gateway holds that is marked
inheritable (by a library, or by uvloop itself while it spawns) would otherwise be open in every
sandbox. The script closes everything but stdin, stdout, stderr and the two descriptors bwrap reads
(its host-side arguments and the compiled filter), then execs.
"""

import asyncio
import fcntl
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

from corral.sessions.backends.local.bwrap import SandboxIdentity, bwrap_invocation
from corral.sessions.backends.local.limits import OWNER_PATTERN, CgroupSet, LimitEnforcer, owner_alive, owner_tag
from corral.sessions.backends.local.seccomp import seccomp_program

log = logging.getLogger(__name__)

_RUN_NAME = re.compile(OWNER_PATTERN)


def _spawner_script(cgroups: CgroupSet, keep: tuple[int, ...]) -> str:
    kept = " ".join(str(fd) for fd in (0, 1, 2, *keep))
    return (
        f'for fd in /proc/self/fd/*; do fd=${{fd##*/}}; [[ " {kept} " == *" $fd "* ]] || exec {{fd}}>&-; done\n'
        + cgroups.join_script()
        + 'exec "$@"\n'
    )


def _memory_file(name: str, data: bytes) -> int:
    """A close-on-exec memory file holding `data`, positioned at its start, numbered above stderr (a
    gateway started with 0-2 closed would otherwise hand it out where the child's stdio goes)."""
    descriptor = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        if descriptor < 3:
            moved = fcntl.fcntl(descriptor, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(descriptor)
            descriptor = moved
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.lseek(descriptor, 0, os.SEEK_SET)
        return descriptor
    except BaseException:
        os.close(descriptor)
        raise


_program: bytes | None = None


async def _seccomp_program() -> bytes:
    """The filter, compiled by libseccomp in a thread on first use only."""
    global _program
    if _program is None:
        _program = await asyncio.to_thread(seccomp_program)
    return _program


async def spawn(
    argv: list[str],
    *,
    data_dir: Path,
    run_dir: Path,
    python: str,
    identity: SandboxIdentity,
    cgroups: CgroupSet,
    stdin: int | None = asyncio.subprocess.DEVNULL,
    stdout: int | None = asyncio.subprocess.DEVNULL,
    stderr: int | None = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    invocation = bwrap_invocation(data_dir, run_dir, python, identity, argv)
    seccomp_fd = _memory_file("corral-seccomp", await _seccomp_program())
    try:
        args_fd = _memory_file("corral-bwrap-args", invocation.options_data())
        try:
            command = [
                *LimitEnforcer.rlimit_prefix(cgroups),
                *invocation.argv(args_fd=args_fd, seccomp_fd=seccomp_fd),
            ]
            return await asyncio.create_subprocess_exec(
                "/bin/bash",
                "-c",
                _spawner_script(cgroups, keep=(seccomp_fd, args_fd)),
                "corral-spawn",
                *command,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(seccomp_fd, args_fd),
                start_new_session=True,
            )
        finally:
            os.close(args_fd)
    finally:
        os.close(seccomp_fd)


async def terminate(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    try:
        process.kill()
    except ProcessLookupError:
        return
    await process.wait()


def new_run_dir(run_base: Path) -> Path:
    """A fresh run directory path, `<run_base>/<owner>/<hex>` (not created; its parents are, root's
    and only traversable). `<owner>` names this gateway process, so a later gateway can tell a
    leftover of a dead one (see reap_leftovers); socket paths under it stay well within the
    ~100-byte limit. Blocking: run it in a thread."""
    owner = run_base / owner_tag()
    for directory in (run_base, owner):
        directory.mkdir(mode=0o711, exist_ok=True)
    return owner / secrets.token_hex(6)


def reap_leftovers(run_base: Path, limits: LimitEnforcer | None) -> list[str]:
    """Remove what gateway processes that are no longer alive left behind: their cgroups (after
    killing any process still in them) and their run directories. A live gateway's, this process's
    included, and directories of an unrecognised name are never touched. Blocking: run it in a
    thread. Returns what was removed."""
    removed = limits.reap_orphans() if limits is not None else []
    try:
        entries = list(run_base.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if not _RUN_NAME.fullmatch(entry.name) or owner_alive(entry.name):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(str(entry))
    if removed:
        log.info("removed the leftovers of stopped gateways: %s", ", ".join(removed))
    return removed


class SandboxProcess:
    """One long-lived process in a sandbox (the kernel, the shell): where it runs and as whom."""

    def __init__(
        self, data_dir: Path, run_dir: Path, *, python: str, identity: SandboxIdentity, cgroups: CgroupSet
    ) -> None:
        self.data_dir = data_dir
        self.run_dir = run_dir
        self.python = python
        self.identity = identity
        self.cgroups = cgroups
        self.process: asyncio.subprocess.Process | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self, argv: list[str], **streams: int | None) -> asyncio.subprocess.Process:
        return await spawn(
            argv,
            data_dir=self.data_dir,
            run_dir=self.run_dir,
            python=self.python,
            identity=self.identity,
            cgroups=self.cgroups,
            **streams,
        )
