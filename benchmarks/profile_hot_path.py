"""The gateway's per-request cost, measured in process where it is deterministic.

    .venv/bin/python benchmarks/profile_hot_path.py [--requests 2000] [--stream] [--store]
        [--concurrency 1] [--cprofile FILE] [--callgrind]

Builds the app (`corral.app.build_app`, no sandboxes) and drives it as an ASGI application
directly, with no HTTP server and no client in front, against `benchmarks/fast_upstream.py` in
its own process: what is measured is the middlewares, the route, validation, the engine, the
upstream client and the answer, per request.

- Default: wall time per request (noisy on a shared machine).
- `--cprofile FILE`: cProfile stats of the measured requests (read with `python -m pstats`).
- `--callgrind`: run the script under valgrind first, e.g.
  `valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
   .venv/bin/python benchmarks/profile_hot_path.py --callgrind --requests 500`;
  instrumentation is switched on (`callgrind_control -i on`) only around the measured requests,
  so `Ir` in the output divided by the requests is the instruction count per request, start-up
  and warm-up excluded. Instruction counts do not depend on the neighbours: compare them across
  commits. The upstream process is not under valgrind.
"""

import argparse
import asyncio
import cProfile
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.support.servers import free_port, wait_for  # noqa: E402

from corral.app import build_app  # noqa: E402
from corral.config import RoutingSettings, SandboxSettings, Settings, UpstreamSettings  # noqa: E402


def scope_for(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/responses",
        "raw_path": b"/v1/responses",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer unused"),
            (b"content-length", str(len(body)).encode()),
        ],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def one_request(app: Any, body: bytes) -> int:
    """One POST through the ASGI app; returns the bytes of the answer's body."""
    done = asyncio.Event()
    sent = False
    status = 0
    size = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope_for(body), receive, send)
    if status != 200:
        raise RuntimeError(f"status {status}")
    return size


async def run(app: Any, body: bytes, requests: int, concurrency: int) -> None:
    per_task = requests // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await one_request(app, body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def callgrind(switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], check=True, capture_output=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--store", action="store_true")
    parser.add_argument("--api", choices=["responses", "chat"], default="responses")
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()

    port = free_port()
    upstream = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "fast_upstream.py"),
        "--port",
        str(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_for, f"http://127.0.0.1:{port}/v1/models")
        settings = Settings(
            sandbox=SandboxSettings(backend="none"),
            data_dir=Path(tempfile.mkdtemp(prefix="corral-profile-")),
            upstreams=[UpstreamSettings(url=f"http://127.0.0.1:{port}/v1", api=args.api)],  # type: ignore[arg-type]
            routing=RoutingSettings(health_check_interval_s=None),
            log_level="warning",
        )
        app = build_app(settings)
        body = orjson.dumps({"model": "mock-model", "input": "hello", "store": args.store, "stream": args.stream})
        async with app.router.lifespan_context(app):
            await run(app, body, args.warmup, 1)
            profiler = cProfile.Profile() if args.cprofile else None
            if args.callgrind:
                callgrind("on")
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            await run(app, body, args.requests, args.concurrency)
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.cprofile)
            if args.callgrind:
                callgrind("off")
        kind = ("streamed" if args.stream else "plain") + (", stored" if args.store else "")
        print(f"{args.requests} {kind} requests at c={args.concurrency}: {elapsed / args.requests * 1e6:.0f} us each")
    finally:
        upstream.terminate()
        await upstream.wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
