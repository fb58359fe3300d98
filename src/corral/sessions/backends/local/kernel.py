"""A stateful Python kernel (ipykernel over IPC sockets) inside the sandbox."""

import asyncio
import base64
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient

from corral.sessions.backends.base import PythonResult
from corral.sessions.backends.local.bwrap import SANDBOX_RUN, SandboxIdentity, python_layout
from corral.sessions.backends.local.limits import CgroupSet
from corral.sessions.backends.local.process import SandboxProcess, terminate

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
INTERRUPT_GRACE_S = 5.0


class KernelDied(Exception):
    pass


class KernelSession(SandboxProcess):
    def __init__(
        self, data_dir: Path, run_dir: Path, *, python: str, identity: SandboxIdentity, cgroups: CgroupSet
    ) -> None:
        super().__init__(data_dir, run_dir, python=python, identity=identity, cgroups=cgroups)
        self.client: AsyncKernelClient | None = None
        self.images = 0

    async def start(self, *, timeout_s: float = 60.0) -> None:
        name = f"k{secrets.token_hex(4)}"
        info: dict[str, Any] = {
            "transport": "ipc",
            "ip": f"{SANDBOX_RUN}/{name}",
            "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256",
            "kernel_name": "python3",
            **_PORTS,
        }
        connection_file = self.run_dir / f"{name}.json"
        await asyncio.to_thread(_write_connection_file, connection_file, info, self.identity)
        argv = [
            python_layout(self.python).interpreter,
            "-m",
            "ipykernel_launcher",
            "-f",
            f"{SANDBOX_RUN}/{name}.json",
            "--IPKernelApp.parent_handle=0",
        ]
        log_file = await asyncio.to_thread(open, self.run_dir / "kernel.log", "ab")
        try:
            self.process = await self.spawn(argv, stderr=log_file.fileno(), stdout=log_file.fileno())
        finally:
            log_file.close()
        client = AsyncKernelClient()
        client.load_connection_info({**info, "ip": str(self.run_dir / name)})
        client.start_channels()
        self.client = client
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive:
                raise KernelDied(f"the Python kernel exited at start (see {self.run_dir / 'kernel.log'})")
            try:
                await client.wait_for_ready(timeout=2)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    async def stop(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        await terminate(self.process)
        self.process = None

    async def interrupt(self) -> None:
        assert self.client is not None
        self.client.control_channel.send(self.client.session.msg("interrupt_request", content={}))

    async def execute(self, code: str, *, timeout_s: float, output_limit: int) -> PythonResult:
        assert self.client is not None
        client = self.client
        msg_id = client.execute(code, allow_stdin=False)
        result = PythonResult()
        collector = _Collector(result, output_limit)
        deadline = time.monotonic() + timeout_s
        interrupted_at: float | None = None
        while True:
            if not self.alive:
                raise KernelDied("the Python kernel died (out of memory or killed)")
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                result.timed_out = True
                interrupted_at = now
                await self.interrupt()
            elif interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE_S:
                raise KernelDied("the Python kernel did not respond to an interrupt")
            try:
                message = await client.get_iopub_msg(timeout=0.25)
            except asyncio.CancelledError:
                await self.interrupt()
                raise
            except Exception:
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status" and message["content"].get("execution_state") == "idle":
                break
            image = collector.take(message)
            if image is not None:
                self.images += 1
                result.images.append(await asyncio.to_thread(self._save_image, image))
        collector.finish()
        return result

    def _save_image(self, data: bytes) -> str:
        name = f"image_{int(time.time())}_{self.images}.png"
        path = self.data_dir / name
        path.write_bytes(data)
        path.chmod(0o666)
        return name


class _Collector:
    """Folds iopub messages into a PythonResult, within an output budget."""

    def __init__(self, result: PythonResult, limit: int) -> None:
        self.result = result
        self.limit = limit
        self.used = 0
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def _budget(self, text: str) -> str:
        room = self.limit - self.used
        if room <= 0:
            self.result.truncated = True
            return ""
        if len(text) > room:
            self.result.truncated = True
            text = text[:room]
        self.used += len(text)
        return text

    def take(self, message: dict[str, Any]) -> bytes | None:
        kind = message["msg_type"]
        content = message["content"]
        if kind == "stream":
            target = self.stdout if content.get("name") == "stdout" else self.stderr
            target.append(self._budget(content.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            if "image/png" in data:
                return base64.b64decode(data["image/png"])
            if "text/plain" in data:
                self.result.display.append(self._budget(data["text/plain"]))
        elif kind == "error":
            self.result.error = {
                "ename": content.get("ename", ""),
                "evalue": content.get("evalue", ""),
                "traceback": [_ANSI.sub("", line) for line in content.get("traceback", [])],
            }
        return None

    def finish(self) -> None:
        self.result.stdout = "".join(self.stdout)
        self.result.stderr = "".join(self.stderr)
        if self.result.truncated:
            self.result.stderr += f"\n[output truncated at {self.limit} characters]"


def _write_connection_file(path: Path, info: dict[str, Any], identity: SandboxIdentity) -> None:
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    if os.getuid() == 0:
        os.chown(path, identity.uid, identity.gid)
