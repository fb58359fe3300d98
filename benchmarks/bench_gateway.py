"""Gateway overhead: the scripted upstream measured directly and through Corral, in one run.

    .venv/bin/python benchmarks/bench_gateway.py [--seconds 5] [--api responses|chat]

Starts `corral mock-upstream` and `corral serve` as separate processes (so the load generator
does not share their interpreter), then measures non-streaming requests/s and p50/p99 latency at
concurrency 1, 16 and 64, and streamed events/s, directly and through the gateway, and prints
the ratios. `store: false` measures the proxy path; `store: true` adds the SQLite write.
Figures depend on the machine: compare ratios from one run, not numbers across machines.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.servers import free_port, wait_for

LONG_TEXT = " ".join(f"word{i}" for i in range(200))


@contextmanager
def process(args: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_for(ready_url)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def load(url: str, body: dict, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    payload = orjson.dumps(body)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


async def stream_events(url: str, body: dict, concurrency: int, seconds: float) -> float:
    payload = orjson.dumps(body)
    events = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal events
            while time.perf_counter() < deadline:
                async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
                    async for line in r.content:
                        if line.startswith(b"data: "):
                            events += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - began)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--api", choices=["responses", "chat"], default="responses")
    args = parser.parse_args()

    mock_port, gateway_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}/v1"
    gateway_url = f"http://127.0.0.1:{gateway_port}/v1"
    data_dir = tempfile.mkdtemp(prefix="corral-bench-")
    serve = ["serve", "--port", str(gateway_port), "--upstream", mock_url, "--upstream-api", args.api]
    serve += ["--data-dir", data_dir, "--log-level", "warning"]
    endpoint = "chat/completions" if args.api == "chat" else "responses"
    with (
        process(["mock-upstream", "--port", str(mock_port)], f"{mock_url}/models"),
        process(serve, f"http://127.0.0.1:{gateway_port}/health"),
    ):
        direct_body = (
            {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}]}
            if args.api == "chat"
            else {"model": "mock-model", "input": "hello", "store": False}
        )
        print(f"upstream API: {args.api}; {args.seconds:.0f} s per measurement; 2-core machines are noisy\n")
        print(f"{'measurement':<34}{'direct':>14}{'gateway':>14}{'ratio':>8}")
        for concurrency in (1, 16, 64):
            direct_rps, direct_lat = await load(f"{mock_url}/{endpoint}", direct_body, concurrency, args.seconds)
            for store in (False, True):
                body = {"model": "mock-model", "input": "hello", "store": store}
                rps, lat = await load(f"{gateway_url}/responses", body, concurrency, args.seconds)
                label = f"c={concurrency} store={str(store).lower()}"
                print(f"{label + ' req/s':<34}{direct_rps:>14.0f}{rps:>14.0f}{rps / direct_rps:>8.2f}")
                for name, q in (("p50", 0.5), ("p99", 0.99)):
                    d, g = pct(direct_lat, q), pct(lat, q)
                    print(f"{label + f' {name} ms':<34}{d:>14.3f}{g:>14.3f}{g / d:>8.2f}")
                if concurrency == 1:
                    added = statistics.median(lat) * 1000 - statistics.median(direct_lat) * 1000
                    print(f"{label + ' added p50 ms':<34}{'':>14}{added:>14.3f}")
        stream_direct_body = (
            {**direct_body, "messages": [{"role": "user", "content": f"[[say {LONG_TEXT}]]"}], "stream": True}
            if args.api == "chat"
            else {"model": "mock-model", "input": f"[[say {LONG_TEXT}]]", "stream": True, "store": False}
        )
        gateway_stream_body = {
            "model": "mock-model",
            "input": f"[[say {LONG_TEXT}]]",
            "stream": True,
            "store": False,
        }
        direct_eps = await stream_events(f"{mock_url}/{endpoint}", stream_direct_body, 16, args.seconds)
        gateway_eps = await stream_events(f"{gateway_url}/responses", gateway_stream_body, 16, args.seconds)
        print(f"{'stream c=16 events/s':<34}{direct_eps:>14.0f}{gateway_eps:>14.0f}{gateway_eps / direct_eps:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
