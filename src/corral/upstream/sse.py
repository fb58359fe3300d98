"""Server-Sent Events from an upstream body: the `data:` payloads, one per event."""

from collections.abc import AsyncIterator


async def iter_sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data (multi-line data joined by newlines), however the bytes are chunked.

    Written by hand because aiohttp's line reader refuses long lines, and a `response.completed`
    event can carry a whole long answer on one line.
    """
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line = buffer[:newline].rstrip(b"\r")
            buffer = buffer[newline + 1 :]
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
    if buffer.strip().startswith(b"data:"):
        line = buffer.strip()
        data.append(line[6:] if line[5:6] == b" " else line[5:])
    if data:
        yield b"\n".join(data)
