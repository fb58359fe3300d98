"""Saving stored responses, the store alone: saves/s and p50 at a given concurrency.

    .venv/bin/python benchmarks/bench_store_save.py [--database URL] [--concurrency 1 16]
        [--seconds 3] [--conversation]

Each save is what a plain `store: true` request writes: the response row (the Response object
without its output), one input message and one output message (`--conversation`: the three
also appended to one conversation, as `responses.persist` does). Default database: a fresh
SQLite file. Run it against an older tree with `PYTHONPATH=<tree>/src` to compare.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop

from corral.storage import Store

INPUT = [{"id": "msg_in", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}]


def new_response(conversation_id: str | None) -> dict[str, Any]:
    response_id = "resp_" + uuid.uuid4().hex
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": "mock-model",
        "conversation": {"id": conversation_id} if conversation_id else None,
        "tools": [],
        "metadata": {},
        "output": [
            {
                "id": "msg_" + response_id,
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "hi " * 20, "annotations": []}],
            }
        ],
    }


async def save(store: Store, conversation_id: str | None) -> None:
    response = new_response(conversation_id)
    items = [*INPUT, *response["output"]] if conversation_id else None
    kwargs: dict[str, Any] = {"previous_response_id": None, "conversation_id": conversation_id}
    if items is None:
        await store.responses.save("bench", response, INPUT, **kwargs)
        return
    try:
        joined = await store.responses.save("bench", response, INPUT, conversation_items=items, **kwargs)
    except TypeError:  # an older tree: the conversation is appended separately
        joined = False
        await store.responses.save("bench", response, INPUT, **kwargs)
    if not joined:
        await store.conversations.add_items("bench", conversation_id or "", items)


async def run(store: Store, concurrency: int, seconds: float, conversation: bool) -> tuple[float, float]:
    conversation_id = None
    if conversation:
        conversation_id = (await store.conversations.create("bench", metadata={}, items=[]))["id"]
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            started = time.perf_counter()
            await save(store, conversation_id)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / seconds, statistics.median(latencies) * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=None)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--conversation", action="store_true")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp(prefix='corral-save-')) / 'corral.db'}"
    store = await Store.open(url)
    try:
        await run(store, 1, 0.5, args.conversation)
        for concurrency in args.concurrency:
            rate, p50 = await run(store, concurrency, args.seconds, args.conversation)
            kind = "with conversation items" if args.conversation else "plain"
            print(f"{url.split(':', 1)[0]} c={concurrency} {kind}: {rate:,.0f} saves/s, p50 {p50:.3f} ms")
    finally:
        await store.close()


if __name__ == "__main__":
    uvloop.run(main())
