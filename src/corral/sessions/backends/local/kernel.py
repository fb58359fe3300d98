"""A stateful Python kernel (ipykernel over IPC sockets) inside the sandbox.

The kernel is hostile: it holds the connection key, so it can send any well-signed message of any
size. The gateway therefore reads only what it asked for (messages whose parent is our request),
bounds every message zmq will accept, folds output into a budget as it arrives, and writes no file:
image bytes go back in the result for the backend to store.

An execution ends when the kernel is done with our request: its `execute_reply` (shell channel)
and its `idle` status (iopub) have arrived. A cancelled or timed-out execution is interrupted until
the kernel is done with it and has answered every interrupt we sent (so no interrupt can land in a
later cell); a kernel that does not get there within INTERRUPT_GRACE_S is killed. Either way the
kernel is quiet when `execute` returns or raises, which is what the backend's per-container lock
relies on.
"""

import asyncio
import base64
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.session import Session
from zmq.utils.monitor import parse_monitor_message

from corral.sessions.backends.base import PythonResult, SandboxError
from corral.sessions.backends.local.bwrap import SANDBOX_RUN, SandboxIdentity, python_layout
from corral.sessions.backends.local.limits import CgroupSet
from corral.sessions.backends.local.process import SandboxProcess, terminate
from corral.sessions.backends.local.sockets import PinnedSockets, SocketsNotReady

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
INTERRUPT_GRACE_S = 5.0
INTERRUPT_RETRY_S = 0.25
SETTLE_S = 2.0
"""After the reply (or idle) arrived, at least this long to wait for the other half."""
MIN_MESSAGE_BYTES = 16 << 20
RECEIVE_QUEUE = 8
"""Messages zmq may hold for us per socket: the gateway's worst case is this times the message bound."""
_MAX_IMAGES = 32
_SLICE_S = 0.5

_ABORTED = "[this code did not run: the Python kernel aborted it]"
_UNCONFIRMED = "[the Python kernel did not report how this execution ended; its output may be incomplete]"
_DROPPED = "[output over {limit} bytes in one message was dropped]"
_RECONNECT_FAILED = "[the Python kernel was restarted after that: variables and imports are gone, files are kept]"


def message_bound(output_limit: int) -> int:
    """The largest message the gateway accepts from a kernel: room for the output budget (up to four
    bytes a character) and for images."""
    return max(MIN_MESSAGE_BYTES, 4 * output_limit)


class KernelDied(SandboxError):
    """The container's Python kernel is gone or stopped answering."""


class _Run:
    """What has arrived so far for one execute_request."""

    def __init__(self, msg_id: str, collector: "_Collector") -> None:
        self.msg_id = msg_id
        self.collector = collector
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.interrupts: set[str] = set()
        self.next_interrupt = 0.0

    @property
    def over(self) -> bool:
        """The kernel is done with the request: it sends the reply, then publishes idle; an interrupt
        landing between the two can suppress the reply, never the idle."""
        return self.reply is not None or self.idle


class KernelSession(SandboxProcess):
    """`log_path`, when given, receives the kernel's stdout and stderr; it must be in a directory the
    sandbox cannot write (it is opened without following links, but its parent is trusted).
    `max_message_bytes` bounds every message the gateway accepts from the kernel."""

    def __init__(
        self,
        data_dir: Path,
        run_dir: Path,
        *,
        python: str,
        identity: SandboxIdentity,
        cgroups: CgroupSet,
        log_path: Path | None = None,
        max_message_bytes: int = MIN_MESSAGE_BYTES,
    ) -> None:
        super().__init__(data_dir, run_dir, python=python, identity=identity, cgroups=cgroups)
        self.log_path = log_path
        self.max_message_bytes = max_message_bytes
        self.client: AsyncKernelClient | None = None
        self._info: dict[str, Any] = {}
        self._sockets: dict[str, tuple[zmq.asyncio.Socket, zmq.Socket[bytes]]] = {}
        self._monitors: dict[zmq.asyncio.Socket, str] = {}
        self._lost: set[str] = set()
        self._pinned: PinnedSockets | None = None

    async def start(self, *, timeout_s: float = 60.0) -> None:
        key = secrets.token_hex(32)
        for _ in range(8):
            name = f"k{secrets.token_hex(4)}"
            info: dict[str, Any] = {
                "transport": "ipc",
                "ip": f"{SANDBOX_RUN}/{name}",
                "key": key,
                "signature_scheme": "hmac-sha256",
                "kernel_name": "python3",
                **_PORTS,
            }
            try:
                await asyncio.to_thread(_write_connection_file, self.run_dir / f"{name}.json", info, self.identity)
                break
            except FileExistsError:
                continue
        else:
            raise KernelDied("could not create the kernel's connection file: every name was taken")
        argv = [
            python_layout(self.python).interpreter,
            "-m",
            "ipykernel_launcher",
            "-f",
            f"{SANDBOX_RUN}/{name}.json",
            "--IPKernelApp.parent_handle=0",
        ]
        output = asyncio.subprocess.DEVNULL
        if self.log_path is not None:
            output = await asyncio.to_thread(_open_log, self.log_path)
        try:
            self.process = await self.spawn(argv, stderr=output, stdout=output)
        finally:
            if output != asyncio.subprocess.DEVNULL:
                os.close(output)
        self._pinned = PinnedSockets(self.run_dir, name, _PORTS.values())
        try:
            ip = await self._pinned.pin(lambda: self.alive, timeout_s)
        except SocketsNotReady as exc:
            raise KernelDied(str(exc)) from exc
        self._info = {**info, "ip": ip}
        await self._connect(timeout_s)

    async def _connect(self, timeout_s: float) -> None:
        """A fresh client on the kernel's sockets, with the message bound, waiting until it answers."""
        self._disconnect()
        client = AsyncKernelClient()
        client.load_connection_info(self._info)  # type: ignore[arg-type]
        client.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        client.context.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        client.start_channels(stdin=False)
        self.client = client
        self._lost.clear()
        for channel_name in ("shell", "iopub", "control"):
            socket = getattr(client, f"{channel_name}_channel").socket
            self._sockets[channel_name] = (socket, zmq.Socket.shadow(socket.underlying))
            self._monitors[socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)] = channel_name
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive:
                raise KernelDied("the Python kernel exited at start")
            try:
                await client.wait_for_ready(timeout=2)
                return
            except (RuntimeError, TimeoutError):
                if time.monotonic() > deadline:
                    raise

    def _disconnect(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        self._sockets.clear()
        self._monitors.clear()

    async def stop(self) -> None:
        self._disconnect()
        await terminate(self.process)
        self.process = None
        if self._pinned is not None:
            await asyncio.to_thread(self._pinned.release)
            self._pinned = None

    def _send_interrupt(self) -> str:
        assert self.client is not None
        message = self.client.session.msg("interrupt_request", content={})
        self.client.control_channel.send(message)
        return str(message["header"]["msg_id"])

    async def execute(self, code: str, *, timeout_s: float, output_limit: int) -> PythonResult:
        assert self.client is not None
        if self._lost:
            await self._reconnect_or_die()
        result = PythonResult()
        collector = _Collector(result, output_limit, image_bytes=self.max_message_bytes)
        msg_id = self.client.execute(code, silent=False, allow_stdin=False, stop_on_error=False)
        run = _Run(msg_id, collector)
        try:
            await self._follow(run, timeout_s)
        except asyncio.CancelledError:
            await _uncancellable(self._halt(run))
            result.status = "interrupted"
            raise
        collector.finish()
        if "iopub" in self._lost:
            result.truncated = True
            result.stderr += "\n" + _DROPPED.format(limit=self.max_message_bytes)
            if not await self._reconnect():
                result.stderr += "\n" + _RECONNECT_FAILED
        return result

    async def _follow(self, run: _Run, timeout_s: float) -> None:
        result = run.collector.result
        deadline = time.monotonic() + timeout_s
        settle: float | None = None
        while True:
            self._check(run)
            now = time.monotonic()
            if run.reply is not None and (run.idle or "iopub" in self._lost):
                break
            if run.over:
                settle = settle or max(deadline, now + SETTLE_S)
                if now >= settle:
                    break
            elif now >= deadline:
                result.timed_out = True
                if not await self._halt(run):
                    raise KernelDied("the Python kernel did not respond to an interrupt")
                settle = time.monotonic() + SETTLE_S
                while run.reply is None or not (run.idle or "iopub" in self._lost):
                    remaining = settle - time.monotonic()
                    if remaining <= 0:
                        break
                    await self._pump(run, remaining)
                break
            await self._pump(run, min(_SLICE_S, (settle or deadline) - now))
        _conclude(run)

    def _check(self, run: _Run) -> None:
        if not self.alive:
            raise KernelDied("the Python kernel died (out of memory or killed)")
        if "shell" in self._lost and run.reply is None:
            raise KernelDied(
                "the Python kernel's connection dropped "
                f"(it died, or sent a message over {self.max_message_bytes} bytes)"
            )

    async def _halt(self, run: _Run) -> bool:
        """Interrupt until the kernel is done with `run` and has answered every interrupt sent; an
        interrupt that arrives before the kernel starts the cell is lost, hence the retries. Kills the
        kernel if that does not happen within INTERRUPT_GRACE_S. True if the kernel survived."""
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        while not (run.over and not run.interrupts):
            now = time.monotonic()
            if not self.alive or now >= deadline or ("shell" in self._lost and "iopub" in self._lost):
                await self.stop()
                return False
            if not run.over and not run.interrupts and now >= run.next_interrupt:
                run.interrupts.add(self._send_interrupt())
                run.next_interrupt = now + INTERRUPT_RETRY_S
            await self._pump(run, min(INTERRUPT_RETRY_S, deadline - now))
        return True

    async def _pump(self, run: _Run, timeout_s: float) -> None:
        """Wait up to `timeout_s` for anything from the kernel and fold what has arrived into `run`."""
        poller = zmq.asyncio.Poller()
        for channel_name, (socket, _) in self._sockets.items():
            if channel_name not in self._lost:
                poller.register(socket, zmq.POLLIN)
        for monitor in self._monitors:
            poller.register(monitor, zmq.POLLIN)
        ready = dict(await poller.poll(max(0, int(timeout_s * 1000))))
        for monitor, channel_name in self._monitors.items():
            if monitor in ready:
                self._read_monitor(monitor, channel_name)
        session = self.client.session if self.client is not None else None
        for channel_name, (socket, sync) in self._sockets.items():
            if socket in ready and session is not None:
                for _ in range(64):
                    try:
                        frames = sync.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    message = _decode(frames, session)
                    if message is not None:
                        _fold(run, channel_name, message)

    def _read_monitor(self, monitor: zmq.asyncio.Socket, channel_name: str) -> None:
        sync: zmq.Socket[bytes] = zmq.Socket.shadow(monitor.underlying)
        while True:
            try:
                event = parse_monitor_message(sync.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                log.info("the kernel's %s connection dropped", channel_name)
                self._lost.add(channel_name)

    async def _reconnect(self) -> bool:
        """zmq does not reconnect after a peer sent an oversized message: connect afresh. Kills the
        kernel if that fails. True if the kernel kept its state."""
        try:
            await self._connect(INTERRUPT_GRACE_S)
            return True
        except asyncio.CancelledError:
            await _uncancellable(self.stop())
            raise
        except Exception:
            log.warning("could not reconnect to the kernel; killing it", exc_info=True)
            await self.stop()
            return False

    async def _reconnect_or_die(self) -> None:
        if not await self._reconnect():
            raise KernelDied("the Python kernel stopped answering")


async def _uncancellable(work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` to its end even if the caller is cancelled again meanwhile (it bounds itself)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue
        except Exception:
            log.warning("stopping a cancelled execution failed", exc_info=True)
            return


def _decode(frames: list[bytes], session: Session) -> dict[str, Any] | None:
    try:
        _, rest = session.feed_identities(frames)
        message = session.deserialize(rest)
    except Exception:
        log.debug("dropped an invalid message from the kernel", exc_info=True)
        return None
    return message if isinstance(message, dict) else None


def _fold(run: _Run, channel_name: str, message: dict[str, Any]) -> None:
    try:
        parent = message.get("parent_header") or {}
        parent_id = parent.get("msg_id") if isinstance(parent, dict) else None
        kind = message.get("msg_type")
        content = message.get("content")
        if not isinstance(content, dict):
            return
        if channel_name == "control":
            if kind == "interrupt_reply":
                run.interrupts.discard(str(parent_id))
        elif parent_id != run.msg_id:
            return
        elif channel_name == "shell":
            if kind == "execute_reply":
                run.reply = content
        elif kind == "status":
            run.idle = run.idle or content.get("execution_state") == "idle"
        else:
            run.collector.take(kind, content)
    except (AttributeError, KeyError, TypeError, ValueError):
        log.debug("ignored a malformed message from the kernel", exc_info=True)


def _conclude(run: _Run) -> None:
    """Set the result's status from the reply; an aborted or unconfirmed execution says so."""
    result = run.collector.result
    reply = run.reply
    status = reply.get("status") if reply is not None else None
    if status == "error" and result.error is None and reply is not None:
        run.collector.take("error", reply)
    if result.timed_out:
        result.status = "timed_out"
    elif status == "ok":
        result.status = "ok"
    elif status == "error":
        result.status = "error"
    elif status == "aborted":
        result.status = "aborted"
        result.error = {"ename": "ExecutionAborted", "evalue": _ABORTED, "traceback": [_ABORTED]}
        run.collector.notes.append(_ABORTED)
    else:
        result.status = "error"
        run.collector.notes.append(_UNCONFIRMED)
        if result.error is None:
            result.error = {"ename": "ExecutionUnconfirmed", "evalue": _UNCONFIRMED, "traceback": [_UNCONFIRMED]}


class _Collector:
    """Folds iopub messages into a PythonResult, within an output budget (text) and an image budget
    (bytes); nothing beyond the budgets is kept."""

    def __init__(self, result: PythonResult, limit: int, *, image_bytes: int) -> None:
        self.result = result
        self.limit = limit
        self.used = 0
        self.image_room = image_bytes
        self.images_dropped = 0
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.notes: list[str] = []

    def _budget(self, text: Any) -> str:
        if not isinstance(text, str):
            return ""
        room = self.limit - self.used
        if room <= 0:
            if text:
                self.result.truncated = True
            return ""
        if len(text) > room:
            self.result.truncated = True
            text = text[:room]
        self.used += len(text)
        return text

    def take(self, kind: Any, content: dict[str, Any]) -> None:
        if kind == "stream":
            target = self.stdout if content.get("name") == "stdout" else self.stderr
            text = self._budget(content.get("text", ""))
            if text:
                target.append(text)
        elif kind in ("execute_result", "display_data"):
            data = content.get("data")
            if not isinstance(data, dict):
                return
            if "image/png" in data:
                self._image(data["image/png"])
            elif "text/plain" in data:
                text = self._budget(data["text/plain"])
                if text:
                    self.result.display.append(text)
        elif kind == "error":
            self.result.error = {
                "ename": _clip(content.get("ename"), 200),
                "evalue": _clip(content.get("evalue"), self.limit),
                "traceback": _clip_lines(content.get("traceback"), self.limit),
            }

    def _image(self, encoded: Any) -> None:
        try:
            data = base64.b64decode(encoded, validate=False) if isinstance(encoded, str) else b""
        except ValueError:
            data = b""
        if not data:
            return
        if len(self.result.image_data) >= _MAX_IMAGES or len(data) > self.image_room:
            self.images_dropped += 1
            return
        self.image_room -= len(data)
        self.result.image_data.append(data)

    def finish(self) -> None:
        self.result.stdout = "".join(self.stdout)
        self.result.stderr = "".join(self.stderr)
        if self.result.truncated:
            self.result.stderr += f"\n[output truncated at {self.limit} characters]"
        if self.images_dropped:
            self.result.stderr += f"\n[{self.images_dropped} images over the limit were dropped]"
        for note in self.notes:
            self.result.stderr += "\n" + note


def _clip(text: Any, limit: int) -> str:
    return _ANSI.sub("", text[:limit]) if isinstance(text, str) else ""


def _clip_lines(lines: Any, limit: int) -> list[str]:
    if not isinstance(lines, list):
        return []
    kept: list[str] = []
    for line in lines:
        text = _clip(line, limit)
        limit -= len(text)
        kept.append(text)
        if limit <= 0:
            break
    return kept


def _write_connection_file(path: Path, info: dict[str, Any], identity: SandboxIdentity) -> None:
    """Create the file only if no entry has that name (a planted link is never followed); it is the
    sandbox's, as its kernel reads it. Blocking."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.getuid() == 0:
            os.fchown(descriptor, identity.uid, identity.gid)
        data = json.dumps(info).encode()
        while data:
            data = data[os.write(descriptor, data) :]
    finally:
        os.close(descriptor)


def _open_log(path: Path) -> int:
    """Blocking."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
