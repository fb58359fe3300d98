"""The SSE reader gives the same events however the upstream's bytes are cut into chunks."""

import asyncio
from collections.abc import AsyncIterator

from corral.upstream.sse import iter_sse_data

STREAM = (
    b'event: response.created\ndata: {"a": 1}\n\n'
    b"data: first line\r\ndata:second line\r\n\r\n"
    b": a comment\nid: 7\ndata: {\"b\": 2}\n\n"
    b"data: [DONE]"
)
EVENTS = [b'{"a": 1}', b"first line\nsecond line", b'{"b": 2}', b"[DONE]"]


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def read(parts: list[bytes]) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [event async for event in iter_sse_data(_chunks(parts))]

    return asyncio.run(collect())


def test_every_cut_into_two_or_three_chunks_gives_the_same_events() -> None:
    assert read([STREAM]) == EVENTS
    for first in range(len(STREAM) + 1):
        assert read([STREAM[:first], STREAM[first:]]) == EVENTS, first
        for second in range(first, len(STREAM) + 1, 7):
            assert read([STREAM[:first], STREAM[first:second], STREAM[second:]]) == EVENTS


def test_one_byte_at_a_time() -> None:
    assert read([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS


def test_a_long_line_across_many_chunks_arrives_whole() -> None:
    line = b"x" * (4 * 1024 * 1024)
    body = b"data: " + line + b"\n\ndata: next\n\n"
    parts = [body[i : i + 1500] for i in range(0, len(body), 1500)]
    assert read(parts) == [line, b"next"]
