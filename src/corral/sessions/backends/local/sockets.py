"""The kernel's IPC sockets, reached without following a path the sandbox can change.

The kernel binds its sockets in the run directory, which the sandbox user writes. Connecting by
those paths would let hostile code swap a socket for a link to any Unix socket on the host, and
zmq resolves the path again on every reconnect. So once the kernel has bound them, the gateway
opens each socket with `O_PATH | O_NOFOLLOW` relative to the run directory (a link opens as a
link, and is refused: it is not a socket) and connects through links to `/proc/self/fd/<n>` in a
directory only the gateway writes: the names it connects to always lead to the inodes it checked.
"""

import asyncio
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

POLL_S = 0.02


class SocketsNotReady(Exception):
    """The kernel did not bind its sockets, or something that is not a socket has their names."""


class PinnedSockets:
    def __init__(self, run_dir: Path, name: str, ports: Iterable[int]) -> None:
        self.run_dir = run_dir
        self.name = name
        self.ports = sorted(set(ports))
        self.directory = run_dir.parent / f"{run_dir.name}.{secrets.token_hex(3)}"
        self.fds: list[int] = []

    async def pin(self, alive: Callable[[], bool], timeout_s: float) -> str:
        """Wait until the kernel has bound every socket, pin them; returns the `ip` to connect to."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self._try_pin):
            if not alive():
                raise SocketsNotReady("the Python kernel exited before it opened its sockets")
            if time.monotonic() > deadline:
                raise SocketsNotReady("the Python kernel did not open its sockets in time")
            await asyncio.sleep(POLL_S)
        return str(self.directory / "k")

    def _try_pin(self) -> bool:
        run = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        opened: list[int] = []
        try:
            for port in self.ports:
                try:
                    fd = os.open(f"{self.name}-{port}", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=run)
                except FileNotFoundError:
                    return False
                opened.append(fd)
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    raise SocketsNotReady(f"{self.name}-{port} in the run directory is not a socket")
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        finally:
            os.close(run)
        os.mkdir(self.directory, 0o700)
        for port, fd in zip(self.ports, opened, strict=True):
            os.symlink(f"/proc/self/fd/{fd}", self.directory / f"k-{port}")
        self.fds = opened
        return True

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        shutil.rmtree(self.directory, ignore_errors=True)
