"""A disk of its own for each container: an ext4 image of a fixed size, loop-mounted as /mnt/data.

Writes inside a container then fail with ENOSPC at its size, whatever the code does, and the
filesystem that holds the database and the other containers never fills up. The image is
allocated in full when the container is created (so the space is really reserved, not promised)
and the gateway refuses a new container when that would leave less than `reserve_bytes` free.
Loop mounts need root; elsewhere containers get a plain directory and no disk quota.
"""

import asyncio
import logging
import os
import shutil
from pathlib import Path

from corral.sessions.backends.base import SandboxCapacityError

log = logging.getLogger(__name__)

IMAGE = "disk.img"
DATA_DIR = "data"
MOUNT_OPTIONS = "loop,nosuid,nodev"


async def _run(*argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, error = await process.communicate()
    return process.returncode or 0, error.decode(errors="replace").strip()


class ContainerDisks:
    """Makes, mounts and unmounts container disks under one base directory."""

    def __init__(self, size_bytes: int, *, reserve_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.reserve_bytes = reserve_bytes
        self.enabled = False

    async def probe(self, scratch: Path) -> str:
        """Turn quotas on if this host can loop-mount; returns a description for the logs."""
        if os.getuid() != 0 or shutil.which("mkfs.ext4") is None or self.size_bytes <= 0:
            return "no per-container disk quota (needs root, mkfs.ext4 and loop devices)"
        root = scratch / ".disk-probe"
        await asyncio.to_thread(shutil.rmtree, root, True)
        await asyncio.to_thread((root / DATA_DIR).mkdir, parents=True)
        try:
            await self._make(root, 8 * 1024 * 1024, uid=0, gid=0)
            error = await self._mount(root)
            if error:
                return f"no per-container disk quota: loop mounts fail here ({error})"
            await self.unmount(root)
        finally:
            await asyncio.to_thread(shutil.rmtree, root, True)
        self.enabled = True
        return f"per-container disks of {self.size_bytes // (1024 * 1024)} MiB"

    async def create(self, root: Path, *, uid: int, gid: int) -> None:
        """A new disk at `root/disk.img`, mounted on `root/data`, its top directory owned by uid:gid."""
        if not self.enabled:
            return
        free = await asyncio.to_thread(lambda: shutil.disk_usage(root).free)
        if free - self.size_bytes < self.reserve_bytes:
            raise SandboxCapacityError("Not enough disk space on this sandbox host for another container.")
        await self._make(root, self.size_bytes, uid=uid, gid=gid)
        error = await self._mount(root)
        if error:
            raise SandboxCapacityError(f"could not mount the container's disk: {error}")

    async def _make(self, root: Path, size: int, *, uid: int, gid: int) -> None:
        image = root / IMAGE

        def allocate() -> None:
            fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)

        await asyncio.to_thread(allocate)
        code, error = await _run(
            "mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"nodiscard,root_owner={uid}:{gid}", str(image)
        )
        if code != 0:
            await asyncio.to_thread(image.unlink, True)
            raise SandboxCapacityError(f"could not make the container's disk: {error}")

    async def _mount(self, root: Path) -> str:
        code, error = await _run("mount", "-t", "ext4", "-o", MOUNT_OPTIONS, str(root / IMAGE), str(root / DATA_DIR))
        return error or "mount failed" if code != 0 else ""

    async def ensure_mounted(self, root: Path) -> None:
        """Mount an existing container's disk again (after a stop or a gateway restart)."""
        if not (root / IMAGE).exists() or await asyncio.to_thread(os.path.ismount, root / DATA_DIR):
            return
        error = await self._mount(root)
        if error:
            raise SandboxCapacityError(f"could not mount the container's disk: {error}")

    async def unmount(self, root: Path) -> None:
        data = root / DATA_DIR
        if not await asyncio.to_thread(os.path.ismount, data):
            return
        code, error = await _run("umount", str(data))
        if code != 0:
            log.warning("could not unmount %s (%s); detaching it lazily", data, error)
            await _run("umount", "-l", str(data))
