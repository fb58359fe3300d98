"""Server-Sent Events from an upstream body: the `data:` payloads, one per event."""

from collections.abc import AsyncIterator


def _payload(line: bytes) -> bytes | None:
    """The data of a `data:` line (one optional space after the colon dropped), else None."""
    if not line.startswith(b"data:"):
        return None
    return line[6:] if line[5:6] == b" " else line[5:]


async def iter_sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield each event's data (multi-line data joined by newlines), however the bytes are chunked.

    Written by hand because aiohttp's line reader refuses long lines, and a `response.completed`
    event can carry a whole long answer on one line. Linear in the body: each chunk is scanned
    once, and only the pieces of an unfinished line are kept (joined once, when it ends).
    """
    pending: list[bytes] = []
    data: list[bytes] = []
    async for chunk in chunks:
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:newline]
            start = newline + 1
            if pending:
                pending.append(piece)
                piece = b"".join(pending)
                pending = []
            line = piece[:-1] if piece.endswith(b"\r") else piece
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
                continue
            payload = _payload(line)
            if payload is not None:
                data.append(payload)
        if start < len(chunk):
            pending.append(chunk[start:])
    payload = _payload(b"".join(pending).strip())
    if payload is not None:
        data.append(payload)
    if data:
        yield b"\n".join(data)
