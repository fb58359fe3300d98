"""LocalSandboxBackend: containers as bubblewrap sandboxes on this host.

Layout: `<data_dir>/containers/<id>/data` is /mnt/data and `<id>/run` holds the kernel's IPC
sockets. A warm pool keeps sandboxes with a started kernel ready in `.pool-*` directories; a new
container takes one by renaming its directory (bind mounts follow the inode).
"""

import asyncio
import logging
import os
import pwd
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from corral.sessions.backends.base import (
    PythonResult,
    SandboxCapacityError,
    SandboxUnavailableError,
    ShellResult,
)
from corral.sessions.backends.local.bwrap import SandboxIdentity
from corral.sessions.backends.local.kernel import KernelDied, KernelSession
from corral.sessions.backends.local.limits import CgroupSet, LimitEnforcer, Limits, parse_memory
from corral.sessions.backends.local.shell import ShellSession

log = logging.getLogger(__name__)

SANDBOX_USER = "corral-sandbox"
POOL_MEMORY = "1g"
POOL_PREFIX = ".pool-"
RECOVERED = "\n[the container hit its process limit: all its processes were killed and restarted; files are kept]"


RUN_BASE = Path(tempfile.gettempdir()) / "corral-run"


@dataclass
class Sandbox:
    """One running container. `run` holds the kernel's IPC sockets: it lives under a short path
    because a Unix socket path may not exceed about 100 bytes."""

    root: Path
    run: Path
    memory_limit: str
    cgroups: CgroupSet
    kernel: KernelSession | None = None
    shell: ShellSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data(self) -> Path:
        return self.root / "data"


class LocalSandboxBackend:
    name = "local"

    def __init__(
        self,
        data_dir: Path,
        *,
        python: str,
        warm_pool_size: int = 1,
        max_containers: int = 32,
        output_limit: int = 65536,
        pids_limit: int = 256,
    ) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailableError("bubblewrap (bwrap) is not installed")
        self.base = Path(data_dir) / "containers"
        self.python = python
        self.warm_pool_size = warm_pool_size
        self.max_containers = max_containers
        self.output_limit = output_limit
        self.pids_limit = pids_limit
        self.location = f"local:{socket.gethostname()}"
        self.identity = SandboxIdentity(os.getuid(), os.getgid())
        self.limits: LimitEnforcer | None = None
        self.sandboxes: dict[str, Sandbox] = {}
        self.pool: list[Sandbox] = []
        self._refill: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        """Prepare the host once: the sandbox user, limits detection, a probe, the warm pool."""
        if self._started:
            return
        self._started = True
        self.base.mkdir(parents=True, exist_ok=True)
        for leftover in self.base.glob(POOL_PREFIX + "*"):
            await asyncio.to_thread(shutil.rmtree, leftover, True)
        if os.getuid() == 0:
            self.identity = await _sandbox_identity()
        self.limits = await asyncio.to_thread(LimitEnforcer)
        await self._probe()
        self._schedule_refill()

    async def _probe(self) -> None:
        probe = self.base / ".probe"
        sandbox = await self._new_sandbox(probe, POOL_MEMORY, start_kernel=False)
        try:
            result = await self._shell(sandbox).run("echo ok", timeout_s=30, max_output=100)
        finally:
            await self._stop_sandbox(sandbox)
            await asyncio.to_thread(shutil.rmtree, probe, True)
        if result.stdout.strip() != "ok":
            raise SandboxUnavailableError(f"bubblewrap sandboxes do not run on this host: {result.stderr.strip()}")

    def files_dir(self, container_id: str) -> Path:
        return self.base / container_id / "data"

    async def _new_sandbox(self, root: Path, memory_limit: str, *, start_kernel: bool) -> Sandbox:
        assert self.limits is not None
        run = RUN_BASE / secrets.token_hex(6)
        await asyncio.to_thread(_prepare_dirs, root, run, self.identity)
        cgroups = await asyncio.to_thread(
            self.limits.create, run.name, Limits(parse_memory(memory_limit), pids=self.pids_limit)
        )
        sandbox = Sandbox(root, run, memory_limit, cgroups)
        if start_kernel:
            await self._kernel(sandbox)
        return sandbox

    def _kernel_session(self, sandbox: Sandbox) -> KernelSession:
        return KernelSession(
            sandbox.data, sandbox.run, python=self.python, identity=self.identity, cgroups=sandbox.cgroups
        )

    async def _kernel(self, sandbox: Sandbox) -> KernelSession:
        if sandbox.kernel is None or not sandbox.kernel.alive:
            if sandbox.kernel is not None:
                await sandbox.kernel.stop()
            sandbox.kernel = self._kernel_session(sandbox)
            await sandbox.kernel.start()
        return sandbox.kernel

    def _shell(self, sandbox: Sandbox) -> ShellSession:
        if sandbox.shell is None:
            sandbox.shell = ShellSession(
                sandbox.data, sandbox.run, python=self.python, identity=self.identity, cgroups=sandbox.cgroups
            )
        return sandbox.shell

    def _schedule_refill(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._fill_pool())

    async def _fill_pool(self) -> None:
        while len(self.pool) < self.warm_pool_size:
            root = self.base / f"{POOL_PREFIX}{os.urandom(6).hex()}"
            try:
                self.pool.append(await self._new_sandbox(root, POOL_MEMORY, start_kernel=True))
            except Exception:
                log.exception("could not start a warm sandbox")
                return

    async def create(self, container_id: str, *, memory_limit: str = "1g") -> str:
        await self.start()
        if len(self.sandboxes) >= self.max_containers:
            raise SandboxCapacityError(
                f"This gateway runs its maximum of {self.max_containers} containers; try again later."
            )
        root = self.base / container_id
        sandbox: Sandbox | None = None
        if memory_limit == POOL_MEMORY and self.pool:
            sandbox = self.pool.pop(0)
            await asyncio.to_thread(sandbox.root.rename, root)
            sandbox.root = root
            for session in (sandbox.kernel, sandbox.shell):
                if session is not None:
                    session.data_dir = sandbox.data
        else:
            sandbox = await self._new_sandbox(root, memory_limit, start_kernel=False)
        self.sandboxes[container_id] = sandbox
        self._schedule_refill()
        return self.location

    async def ensure_running(self, container_id: str, *, memory_limit: str = "1g") -> None:
        await self.start()
        if container_id in self.sandboxes:
            return
        root = self.base / container_id
        if len(self.sandboxes) >= self.max_containers:
            raise SandboxCapacityError(f"This gateway runs its maximum of {self.max_containers} containers.")
        self.sandboxes[container_id] = await self._new_sandbox(root, memory_limit, start_kernel=False)

    async def is_running(self, container_id: str) -> bool:
        return container_id in self.sandboxes

    def _get(self, container_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(container_id)
        if sandbox is None:
            raise SandboxUnavailableError(f"container {container_id} is not running on this host")
        return sandbox

    async def run_python(self, container_id: str, code: str, *, timeout_s: float) -> PythonResult:
        sandbox = self._get(container_id)
        async with sandbox.lock:
            try:
                kernel = await self._kernel(sandbox)
                result = await kernel.execute(code, timeout_s=timeout_s, output_limit=self.output_limit)
                if await self._recover_if_saturated(sandbox):
                    result.stderr += RECOVERED
                return result
            except KernelDied as exc:
                if sandbox.kernel is not None:
                    await sandbox.kernel.stop()
                sandbox.kernel = None
                return PythonResult(
                    stderr=f"{exc}. The kernel was restarted: variables and imports are gone, files are kept.",
                    error={"ename": "KernelDied", "evalue": str(exc), "traceback": [str(exc)]},
                    timed_out=True,
                )

    async def run_shell(
        self, container_id: str, command: str, *, timeout_s: float, max_output_length: int | None = None
    ) -> ShellResult:
        sandbox = self._get(container_id)
        limit = min(max_output_length or self.output_limit, self.output_limit)
        result = await self._shell(sandbox).run(command, timeout_s=timeout_s, max_output=limit)
        if await self._recover_if_saturated(sandbox):
            result.stderr += RECOVERED
        return result

    async def _recover_if_saturated(self, sandbox: Sandbox) -> bool:
        """A container whose process limit is exhausted (a fork bomb) gets all its processes killed."""
        if not await asyncio.to_thread(sandbox.cgroups.saturated):
            return False
        for session in (sandbox.kernel, sandbox.shell):
            if session is not None:
                await session.stop()
        sandbox.kernel = sandbox.shell = None
        await asyncio.to_thread(sandbox.cgroups.kill_all)
        return True

    async def _stop_sandbox(self, sandbox: Sandbox) -> None:
        for session in (sandbox.kernel, sandbox.shell):
            if session is not None:
                await session.stop()
        sandbox.kernel = sandbox.shell = None
        await asyncio.to_thread(sandbox.cgroups.remove)
        await asyncio.to_thread(shutil.rmtree, sandbox.run, True)

    async def stop(self, container_id: str) -> None:
        sandbox = self.sandboxes.pop(container_id, None)
        if sandbox is not None:
            await self._stop_sandbox(sandbox)

    async def destroy(self, container_id: str) -> None:
        await self.stop(container_id)
        await asyncio.to_thread(shutil.rmtree, self.base / container_id, True)

    async def aclose(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
        for container_id in list(self.sandboxes):
            await self.stop(container_id)
        for sandbox in self.pool:
            await self._stop_sandbox(sandbox)
            await asyncio.to_thread(shutil.rmtree, sandbox.root, True)
        self.pool.clear()


def _prepare_dirs(root: Path, run: Path, identity: SandboxIdentity) -> None:
    RUN_BASE.mkdir(mode=0o711, exist_ok=True)
    for directory in (root / "data", run):
        directory.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            os.chown(directory, identity.uid, identity.gid)
        directory.chmod(0o770 if directory == run else 0o777)
    root.chmod(0o711)


async def _sandbox_identity() -> SandboxIdentity:
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        process = await asyncio.create_subprocess_exec(
            "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", SANDBOX_USER,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, error = await process.communicate()
        if process.returncode not in (0, 9):
            raise SandboxUnavailableError(f"could not create the sandbox user: {error.decode().strip()}") from None
        entry = pwd.getpwnam(SANDBOX_USER)
    return SandboxIdentity(entry.pw_uid, entry.pw_gid)
