"""A load generator that costs little per request: raw asyncio protocols on keep-alive connections.

aiohttp's client spends more CPU per request than the fast upstream does to answer, and the load
generator shares the machine with what it measures; this one writes a prepared request and
parses the answer's framing (Content-Length or chunked) with a few `find`s, so the
direct figure is the upstream's and not the client's.

Each of `concurrency` connections sends one request at a time (no pipelining) for `seconds`.
For streamed answers it records when the first complete `data:` line arrived and counts events.
"""

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    first_event: list[float] = field(default_factory=list)
    events: int = 0
    errors: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def pct(self, q: float, values: list[float] | None = None) -> float:
        """The q-quantile in milliseconds."""
        ordered = sorted(self.latencies if values is None else values)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class _Exchange(asyncio.Protocol):
    """One connection; `request()` sends the prepared bytes and resolves when the answer is whole."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.done: asyncio.Future[tuple[int, int, float]] | None = None
        self.started = 0.0
        self.first_event = 0.0
        self.status = 0
        self.body_start = -1
        self.length = -1
        self.chunked = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed mid-answer"))
        if not self.lost.done():
            self.lost.set_result(None)

    def request(self, payload: bytes) -> asyncio.Future[tuple[int, int, float]]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.body_start = -1
        self.first_event = 0.0
        self.started = time.perf_counter()
        self.transport.write(payload)
        return self.done

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        before = len(buffer)
        buffer += data
        if self.body_start < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = end + 4
            self.chunked = b"transfer-encoding: chunked" in head
            at = head.find(b"content-length:")
            self.length = -1
            if at >= 0:
                stop = head.find(b"\r\n", at)
                self.length = int(head[at + 15 : stop if stop >= 0 else None])
            before = self.body_start
        if not self.first_event and buffer.find(b"\n\n", max(before - 1, self.body_start)) >= 0:
            self.first_event = time.perf_counter() - self.started
        if self.chunked:
            complete = buffer.endswith(b"0\r\n\r\n") and _chunked_end(buffer, self.body_start)
        else:
            complete = len(buffer) - self.body_start >= self.length
        if complete and self.done is not None and not self.done.done():
            events = buffer.count(b"\ndata: ", self.body_start) + (
                buffer[self.body_start : self.body_start + 6] == b"data: "
            )
            self.done.set_result((self.status, events, self.first_event))


def _chunked_end(buffer: bytearray, start: int) -> bool:
    """Walk the chunk sizes to tell a final zero-size chunk from bytes that merely look like one."""
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return False
        size = int(buffer[at:line_end].split(b";", 1)[0], 16)
        if size == 0:
            return True
        at = line_end + 2 + size + 2
        if at > len(buffer):
            return False


def http_request(url: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    return (
        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def run(url: str, body: bytes, concurrency: int, seconds: float, *, warmup: float = 0.3) -> Result:
    """`concurrency` connections, each one request at a time, for `seconds` after a short warm-up."""
    parts = urlsplit(url)
    payload = http_request(url, body)
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Exchange, parts.hostname, parts.port))[1] for _ in range(concurrency)]
    result = Result(seconds)
    measuring = False
    stop_at = time.perf_counter() + warmup + seconds

    async def worker(exchange: _Exchange) -> None:
        while (now := time.perf_counter()) < stop_at:
            status, events, first = await exchange.request(payload)
            if not measuring:
                continue
            if status != 200:
                result.errors += 1
                continue
            result.latencies.append(time.perf_counter() - now)
            if events:
                result.events += events
                result.first_event.append(first)

    tasks = [asyncio.create_task(worker(c)) for c in connections]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - began
    for exchange in connections:
        assert exchange.transport is not None
        exchange.transport.close()
    return result
