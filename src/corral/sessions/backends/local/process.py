"""Starting one sandboxed process: join the cgroups, apply rlimits, drop privileges, bubblewrap."""

import asyncio
from pathlib import Path

from corral.sessions.backends.local.bwrap import SandboxIdentity, bwrap_command
from corral.sessions.backends.local.limits import CgroupSet, LimitEnforcer


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
    command = [
        *LimitEnforcer.rlimit_prefix(cgroups),
        *bwrap_command(data_dir, run_dir, python, identity, argv),
    ]
    return await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        cgroups.join_script() + 'exec "$@"',
        "sh",
        *command,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


async def terminate(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    try:
        process.kill()
    except ProcessLookupError:
        return
    await process.wait()


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
            **streams,  # type: ignore[arg-type]
        )
