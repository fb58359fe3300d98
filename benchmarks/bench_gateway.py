"""Gateway overhead as ratios to the wire, every figure measured directly and through Corral in one run.

    .venv/bin/python benchmarks/bench_gateway.py [--seconds 4] [--api responses|chat]
        [--workers N] [--database URL] [--json FILE] [--repeat K]

The upstream is `benchmarks/fast_upstream.py` (raw asyncio, canned answers, tens of thousands of
requests/s on one core) and the load comes from `benchmarks/loadgen.py` (raw asyncio
connections), so the direct figures are the wire's and a ratio cannot flatter the gateway. The
upstream's own rate at c=16 is printed first: a ratio against a slow upstream means little.

Figures, each as the gateway's value next to the direct one from the same run:
- c=1 added p50 (ms) with `store: false` and with `store: true` (SQLite unless --database);
- c=16 requests/s, and p99/p50 at c=16;
- streamed events/s at c=16 (200 text deltas per answer);
- time to first event (p50, ms added over direct) at c=1 and at c=16.
Upstream, gateway and load generator share the machine's cores: compare ratios, not absolutes,
and repeat (--repeat) to see the spread on a noisy machine.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from tests.support.servers import free_port, wait_for  # noqa: E402

import loadgen  # noqa: E402


@contextmanager
def process(args: list[str], ready_url: str, *, timeout_s: float = 60) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for one measurement, ready once `ready_url` answers (`CORRAL_*` variables
    of the caller's environment are not passed on)."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")},
    )
    try:
        wait_for(ready_url, timeout=timeout_s)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=timeout_s)


def body(api: str, *, direct: bool, store: bool = False, stream: bool = False) -> bytes:
    if direct and api == "chat":
        return orjson.dumps(
            {"model": "mock-model", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
        )
    return orjson.dumps({"model": "mock-model", "input": "hello", "store": store, "stream": stream})


async def measure(upstream: str, gateway: str, api: str, seconds: float) -> dict[str, float]:
    """One pass over every figure; returns name -> value."""
    endpoint = "chat/completions" if api == "chat" else "responses"
    direct_url = f"{upstream}/v1/{endpoint}"
    gateway_url = f"{gateway}/v1/responses"
    out: dict[str, float] = {}

    async def pair(concurrency: int, **kind: bool) -> tuple[loadgen.Result, loadgen.Result]:
        direct = await loadgen.run(
            direct_url, body(api, direct=True, stream=kind.get("stream", False)), concurrency, seconds
        )
        through = await loadgen.run(gateway_url, body(api, direct=False, **kind), concurrency, seconds)
        if through.errors or direct.errors:
            raise RuntimeError(f"errors: direct {direct.errors}, gateway {through.errors}")
        return direct, through

    direct, plain = await pair(1)
    stored = await loadgen.run(gateway_url, body(api, direct=False, store=True), 1, seconds)
    out["c1_direct_p50_ms"] = direct.pct(0.5)
    out["c1_added_p50_ms"] = plain.pct(0.5) - direct.pct(0.5)
    out["c1_added_p50_store_ms"] = stored.pct(0.5) - direct.pct(0.5)
    direct16, plain16 = await pair(16)
    out["upstream_c16_rps"] = direct16.rps
    out["c16_rps"] = plain16.rps
    out["c16_rps_ratio"] = plain16.rps / direct16.rps
    out["c16_p50_ms"] = plain16.pct(0.5)
    out["c16_p99_ms"] = plain16.pct(0.99)
    out["c16_p99_over_p50"] = plain16.pct(0.99) / plain16.pct(0.5)
    out["c16_direct_p99_over_p50"] = direct16.pct(0.99) / direct16.pct(0.5)
    stored16 = await loadgen.run(gateway_url, body(api, direct=False, store=True), 16, seconds)
    out["c16_store_rps_ratio"] = stored16.rps / direct16.rps
    sdirect, sgate = await pair(16, stream=True)
    out["stream_direct_events_s"] = sdirect.events_per_s
    out["stream_events_s"] = sgate.events_per_s
    out["stream_events_ratio"] = sgate.events_per_s / sdirect.events_per_s
    out["ttfe_c16_added_ms"] = sgate.pct(0.5, sgate.first_event) - sdirect.pct(0.5, sdirect.first_event)
    sdirect1, sgate1 = await pair(1, stream=True)
    out["ttfe_c1_added_ms"] = sgate1.pct(0.5, sgate1.first_event) - sdirect1.pct(0.5, sdirect1.first_event)
    return out


LABELS = [
    ("upstream_c16_rps", "upstream alone, c=16 req/s", "{:,.0f}"),
    ("c1_direct_p50_ms", "direct p50, c=1 (ms)", "{:.3f}"),
    ("c1_added_p50_ms", "added p50, c=1, store:false (ms)", "{:.3f}"),
    ("c1_added_p50_store_ms", "added p50, c=1, store:true (ms)", "{:.3f}"),
    ("c16_rps", "gateway req/s, c=16, store:false", "{:,.0f}"),
    ("c16_rps_ratio", "req/s vs direct, c=16, store:false", "{:.3f}x"),
    ("c16_store_rps_ratio", "req/s vs direct, c=16, store:true", "{:.3f}x"),
    ("c16_p50_ms", "gateway p50, c=16 (ms)", "{:.2f}"),
    ("c16_p99_ms", "gateway p99, c=16 (ms)", "{:.2f}"),
    ("c16_p99_over_p50", "p99/p50, c=16, gateway", "{:.2f}"),
    ("c16_direct_p99_over_p50", "p99/p50, c=16, direct", "{:.2f}"),
    ("stream_events_ratio", "streamed events/s vs direct, c=16", "{:.3f}x"),
    ("ttfe_c1_added_ms", "time to first event, c=1, added (ms)", "{:.3f}"),
    ("ttfe_c16_added_ms", "time to first event, c=16, added (ms)", "{:.2f}"),
]


def report(runs: list[dict[str, float]]) -> None:
    print(f"{'figure':<42}" + "".join(f"{'run ' + str(i + 1):>12}" for i in range(len(runs))) + f"{'median':>12}")
    for key, label, fmt in LABELS:
        values = [run[key] for run in runs]
        cells = "".join(f"{fmt.format(v):>12}" for v in values)
        print(f"{label:<42}{cells}{fmt.format(statistics.median(values)):>12}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--api", choices=["responses", "chat"], default="responses")
    parser.add_argument("--workers", type=int, default=None, help="Pass --workers N to corral serve.")
    parser.add_argument("--database", default=None, help="Database URL (default: SQLite in a temporary dir).")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", default=None, help="Write every run's figures here.")
    args = parser.parse_args()

    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    gateway = f"http://127.0.0.1:{gw_port}"
    serve = [sys.executable, "-m", "corral.cli", "serve", "--port", str(gw_port), "--upstream", f"{upstream}/v1"]
    serve += [
        "--upstream-api",
        args.api,
        "--data-dir",
        tempfile.mkdtemp(prefix="corral-bench-"),
        "--log-level",
        "warning",
    ]
    if args.workers:
        # Workers cannot share a local sandbox backend (docs/benchmarks.md); this measures no containers.
        config = Path(tempfile.mkdtemp(prefix="corral-bench-config-")) / "corral.yaml"
        config.write_text("sandbox:\n  backend: none\n")
        serve += ["--workers", str(args.workers), "--config", str(config)]
    if args.database:
        serve += ["--database", args.database]
    runs: list[dict[str, Any]] = []
    with (
        process([sys.executable, str(HERE / "fast_upstream.py"), "--port", str(up_port)], f"{upstream}/v1/models"),
        process(serve, f"{gateway}/health"),
    ):
        await loadgen.run(f"{gateway}/v1/responses", body(args.api, direct=False), 4, 1.0)
        for _ in range(args.repeat):
            runs.append(await measure(upstream, gateway, args.api, args.seconds))
    print(f"upstream API: {args.api}; workers: {args.workers or 1}; {args.seconds:.0f} s per measurement\n")
    report(runs)
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps({"args": vars(args), "runs": runs}, indent=1))


if __name__ == "__main__":
    uvloop.run(main())
