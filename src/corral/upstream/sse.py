"""Server-Sent Events from an upstream body: the `data:` payloads, one per event."""

from collections.abc import AsyncIterator


def _payload(line: bytes) -> bytes | None:
    """The data of a `data:` line (one optional space after the colon dropped), else None."""
    if not line.startswith(b"data:"):
        return None
    return line[6:] if line[5:6] == b" " else line[5:]


async def iter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """The data of each event (multi-line data joined by newlines), however the bytes are chunked,
    as one list per chunk: every event the chunk completes, in order (never an empty list).

    Written by hand because aiohttp's line reader refuses long lines, and a `response.completed`
    event can carry a whole long answer on one line. Linear in the body: a chunk without a line
    end is only kept (its pieces joined once, when the line ends); one with line ends is split
    once, in C, and its lines read in one loop. Handing over a whole chunk's events at once lets
    the relay process them without a suspension per event.
    """
    pending: list[bytes] = []
    data: list[bytes] = []
    for_event = data.append
    async for chunk in chunks:
        last = chunk.rfind(b"\n")
        if last < 0:
            if chunk:
                pending.append(chunk)
            continue
        if pending:
            pending.append(chunk[: last + 1])
            text = b"".join(pending)
            pending = []
        else:
            text = chunk if last == len(chunk) - 1 else chunk[: last + 1]
        if last < len(chunk) - 1:
            pending.append(chunk[last + 1 :])
        ready: list[bytes] = []
        lines = text.split(b"\n")
        lines.pop()  # text ends with a newline: the last piece is empty
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    ready.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                for_event(line[6:] if line[5:6] == b" " else line[5:])
        if ready:
            yield ready
    payload = _payload(b"".join(pending).strip())
    if payload is not None:
        data.append(payload)
    if data:
        yield [b"\n".join(data)]


async def iter_sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each event's data, one at a time (`iter_sse_batches`, flattened)."""
    async for batch in iter_sse_batches(chunks):
        for data in batch:
            yield data
