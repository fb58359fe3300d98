"""Routing overhead: 64 concurrent clients through Corral over 1 and over 4 workers, and directly.

    .venv/bin/python benchmarks/bench_routing.py [--seconds 5] [--policy least_outstanding]

Every process shares the same cores, so 4 workers do not add capacity here: the figure to read
is what choosing among 4 workers costs compared with 1, at the same load.
"""

import argparse
import asyncio
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.servers import free_port

from bench_gateway import load, pct, process


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--policy", default="least_outstanding")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    body = {"model": "mock-model", "input": "hello", "store": False}
    with ExitStack() as stack:
        mock_urls = []
        for _ in range(4):
            port = free_port()
            url = f"http://127.0.0.1:{port}/v1"
            stack.enter_context(process(["mock-upstream", "--port", str(port)], f"{url}/models"))
            mock_urls.append(url)
        gateways = {}
        for workers in (1, 4):
            port = free_port()
            config = Path(tempfile.mkdtemp()) / "corral.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "routing": {"policy": args.policy, "health_check_interval_s": None},
                        "upstreams": [
                            {"url": url, "name": f"w{n}", "models": ["mock-model"]}
                            for n, url in enumerate(mock_urls[:workers])
                        ],
                    }
                )
            )
            serve = [
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--data-dir",
                str(config.parent),
                "--log-level",
                "warning",
            ]
            stack.enter_context(process(serve, f"http://127.0.0.1:{port}/health"))
            gateways[workers] = f"http://127.0.0.1:{port}/v1/responses"
        direct_body = {"model": "mock-model", "input": "hello", "store": False}
        rows = [
            ("direct, 1 worker", await load(f"{mock_urls[0]}/responses", direct_body, args.concurrency, args.seconds))
        ]
        for workers, url in gateways.items():
            rows.append((f"gateway, {workers} worker(s)", await load(url, body, args.concurrency, args.seconds)))
    print(f"policy {args.policy}, concurrency {args.concurrency}, {args.seconds:.0f} s each; one machine's cores\n")
    print(f"{'target':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, (rps, latencies) in rows:
        print(f"{label:<24}{rps:>10.0f}{pct(latencies, 0.5):>10.2f}{pct(latencies, 0.99):>10.2f}")
    one, four = rows[1][1][0], rows[2][1][0]
    print(f"\n4 workers vs 1 through the gateway: {four / one:.2f}x the throughput")


if __name__ == "__main__":
    asyncio.run(main())
