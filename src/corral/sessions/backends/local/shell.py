"""A persistent bash session inside the sandbox, driven over pipes with sentinel markers.

Each command runs in the session's own shell (so `cd` and variables persist), with stdin from
/dev/null; a random marker after it carries the exit code. A command that times out takes the
session down with it, and the next command gets a fresh one.
"""

import asyncio
import base64
import secrets

from corral.sessions.backends.base import ShellResult
from corral.sessions.backends.local.process import SandboxProcess, terminate

_CHUNK = 65536


class ShellSession(SandboxProcess):
    async def start(self) -> None:
        self.process = await self.spawn(
            ["/bin/bash", "--noprofile", "--norc"],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self) -> None:
        await terminate(self.process)
        self.process = None

    async def run(self, command: str, *, timeout_s: float, max_output: int) -> ShellResult:
        if not self.alive:
            await self.start()
        process = self.process
        assert process is not None and process.stdin and process.stdout and process.stderr
        marker = f"__corral_{secrets.token_hex(8)}__"
        encoded = base64.b64encode(command.encode()).decode()
        script = (
            f'eval "$(printf %s {encoded} | base64 -d)" < /dev/null\n'
            f'printf "\\n{marker} %d\\n" $?\nprintf "\\n{marker}\\n" >&2\n'
        )
        process.stdin.write(script.encode())
        await process.stdin.drain()
        stdout = _Reader(process.stdout, marker, max_output)
        stderr = _Reader(process.stderr, marker, max_output)
        try:
            await asyncio.wait_for(asyncio.gather(stdout.read(), stderr.read()), timeout_s)
        except TimeoutError:
            await self.stop()
            return ShellResult(
                stdout=stdout.text(),
                stderr=stderr.text() + f"\n[timed out after {timeout_s:g} s; the shell session was restarted]",
                exit_code=None,
                timed_out=True,
                truncated=stdout.truncated or stderr.truncated,
            )
        except ConnectionError:
            code = await process.wait()
            self.process = None
            return ShellResult(
                stdout=stdout.text(),
                stderr=stderr.text(),
                exit_code=code,
                truncated=stdout.truncated or stderr.truncated,
            )
        return ShellResult(
            stdout=stdout.text(),
            stderr=stderr.text(),
            exit_code=stdout.exit_code,
            truncated=stdout.truncated or stderr.truncated,
        )


class _Reader:
    """Reads one stream up to the marker, keeping at most `limit` bytes of what came before it."""

    def __init__(self, stream: asyncio.StreamReader, marker: str, limit: int) -> None:
        self.stream = stream
        self.marker = ("\n" + marker).encode()
        self.limit = limit
        self.kept = bytearray()
        self.tail = b""
        self.truncated = False
        self.exit_code: int | None = None

    async def read(self) -> None:
        while True:
            chunk = await self.stream.read(_CHUNK)
            if not chunk:
                self._keep(self.tail)
                self.tail = b""
                raise ConnectionError("shell stream closed")
            window = self.tail + chunk
            found = window.find(self.marker)
            if found >= 0:
                self._keep(window[:found])
                rest = window[found + len(self.marker) :]
                while b"\n" not in rest:
                    more = await self.stream.read(_CHUNK)
                    if not more:
                        break
                    rest += more
                code = rest.strip().split(b"\n", 1)[0].strip()
                self.exit_code = int(code) if code.lstrip(b"-").isdigit() else 0
                return
            keep = max(0, len(window) - len(self.marker))
            self._keep(window[:keep])
            self.tail = window[keep:]

    def _keep(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self.kept += data

    def text(self) -> str:
        text = self.kept.decode("utf-8", "replace")
        return text + (f"\n[output truncated at {self.limit} bytes]" if self.truncated else "")
