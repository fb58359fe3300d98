"""The upstream SSE reader on bursts of events and on one long line, against an older version of
it from git (default: the last commit before the linear reader), measured in one run.

    .venv/bin/python benchmarks/bench_sse.py [--against 8465909]
"""

import argparse
import asyncio
import subprocess
import time
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from corral.upstream.sse import iter_sse_data

ROOT = Path(__file__).resolve().parent.parent
Reader = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


def older(revision: str) -> Reader:
    source = subprocess.run(
        ["git", "show", f"{revision}:src/corral/upstream/sse.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("sse_old")
    exec(compile(source, "sse_old.py", "exec"), module.__dict__)
    return module.iter_sse_data  # type: ignore[no-any-return]


async def _feed(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def consume(reader: Reader, parts: list[bytes]) -> int:
    return sum([1 async for _ in reader(_feed(parts))])


def best(reader: Reader, parts: list[bytes], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        asyncio.run(consume(reader, parts))
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="8465909")
    args = parser.parse_args()
    event = b'data: {"type":"response.output_text.delta","delta":"tok","sequence_number":1}\n\n'
    burst = [event * 4000]
    line = b"data: " + b"x" * (2 * 1024 * 1024) + b"\n\n"
    long_line = [line[i : i + 1500] for i in range(0, len(line), 1500)]
    old = older(args.against)
    print(f"{'':36}{'old':>10}{'new':>10}{'speed-up':>10}")
    for label, parts in (("4000 events in one chunk", burst), ("a 2 MiB line in 1500-byte chunks", long_line)):
        before, after = best(old, parts), best(iter_sse_data, parts)
        print(f"{label:36}{before * 1000:8.1f}ms{after * 1000:8.1f}ms{before / after:9.1f}x")


if __name__ == "__main__":
    main()
