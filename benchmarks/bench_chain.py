"""A long `previous_response_id` chain through the gateway, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/bench_chain.py [--turns 200] [--seconds 2] [--repeat 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--no-postgres]

For each database: the fast upstream (`benchmarks/fast_upstream.py`) and one gateway process
(`sandbox.backend: none`, so no warm pool runs beside it); chains of 10 and N stored turns are
built through the gateway (`store: true`, each answer one assistant message); then, at c=1 and in
one run, the p50 of
- a plain request (`store: false`, no chain),
- the same request with `previous_response_id` at the end of the 10-turn chain and of the N-turn
  chain (`store: false`, so the chain does not grow while measured).
The chain's cost is its p50 minus the plain request's (the history loaded, checked, replayed and
sent upstream). The store's own `load_chain` on the same database, from this process, is printed
beside it to tell the query from the rest. PostgreSQL gets a scratch database, dropped at the end.
"""

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from tests.support.servers import free_port  # noqa: E402

import loadgen  # noqa: E402
from bench_gateway import process  # noqa: E402
from corral.api.tenancy import DEFAULT_TENANT  # noqa: E402
from corral.storage import Store  # noqa: E402

MODEL = "mock-model"


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    name = f"corral_bench_chain_{secrets.token_hex(4)}"
    admin = admin_url.replace("postgresql://", "postgres://", 1)

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def body(previous: str | None, *, store: bool = False) -> bytes:
    request: dict[str, object] = {"model": MODEL, "input": "hello", "store": store}
    if previous:
        request["previous_response_id"] = previous
    return orjson.dumps(request)


async def build_chain(gateway: str, turns: int) -> str:
    """`turns` stored responses, each continuing the last; returns the newest id."""
    previous: str | None = None
    async with aiohttp.ClientSession() as session:
        for _ in range(turns):
            async with session.post(
                f"{gateway}/v1/responses", data=body(previous, store=True), headers={"content-type": "application/json"}
            ) as answer:
                payload = await answer.json()
                if answer.status != 200:
                    raise RuntimeError(f"building the chain: {answer.status} {payload}")
                previous = str(payload["id"])
    assert previous is not None
    return previous


async def store_load_chain(url: str, tip: str, rounds: int = 30) -> float:
    """p50 of `load_chain` on the tip, in ms, from this process."""
    store = await Store.open(url)
    try:
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await store.responses.load_chain(DEFAULT_TENANT, tip)
            samples.append(time.perf_counter() - started)
    finally:
        await store.close()
    return statistics.median(samples) * 1000


async def measure(label: str, database: str, data_dir: str, args: argparse.Namespace) -> list[dict[str, float]]:
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    gateway = f"http://127.0.0.1:{gw_port}"
    config = Path(data_dir) / "corral.yaml"
    config.write_text("sandbox:\n  backend: none\n")
    serve = [sys.executable, "-m", "corral.cli", "serve", "--port", str(gw_port), "--upstream", f"{upstream}/v1"]
    serve += ["--upstream-api", "responses", "--data-dir", data_dir, "--database", database]
    serve += ["--config", str(config), "--log-level", "warning"]
    runs: list[dict[str, float]] = []
    with (
        process([sys.executable, str(HERE / "fast_upstream.py"), "--port", str(up_port)], f"{upstream}/v1/models"),
        process(serve, f"{gateway}/health"),
    ):
        url = f"{gateway}/v1/responses"
        await loadgen.run(url, body(None), 1, 1.0)
        short = await build_chain(gateway, 10)
        long = await build_chain(gateway, args.turns)
        for _ in range(args.repeat):
            direct = await loadgen.run(f"{upstream}/v1/responses", body(None), 1, args.seconds)
            plain = await loadgen.run(url, body(None), 1, args.seconds)
            chain10 = await loadgen.run(url, body(short), 1, args.seconds)
            chain = await loadgen.run(url, body(long), 1, args.seconds)
            for result in (direct, plain, chain10, chain):
                if result.errors:
                    raise RuntimeError(f"{label}: {result.errors} errors")
            runs.append(
                {
                    "direct_p50": direct.pct(0.5),
                    "plain_p50": plain.pct(0.5),
                    "chain10_p50": chain10.pct(0.5),
                    "chain_p50": chain.pct(0.5),
                    "chain10_added": chain10.pct(0.5) - plain.pct(0.5),
                    "chain_added": chain.pct(0.5) - plain.pct(0.5),
                    "chain_ratio": chain.pct(0.5) / plain.pct(0.5),
                    "load_chain": await store_load_chain(database, long),
                }
            )
    return runs


LABELS = [
    ("direct_p50", "upstream direct p50 (ms)", "{:.3f}"),
    ("plain_p50", "gateway p50, no chain (ms)", "{:.3f}"),
    ("chain10_p50", "gateway p50, 10-turn chain (ms)", "{:.3f}"),
    ("chain_p50", "gateway p50, {turns}-turn chain (ms)", "{:.3f}"),
    ("chain10_added", "10-turn chain, added over no chain (ms)", "{:.3f}"),
    ("chain_added", "{turns}-turn chain, added over no chain (ms)", "{:.3f}"),
    ("chain_ratio", "{turns}-turn chain p50 / no-chain p50", "{:.2f}x"),
    ("load_chain", "store load_chain alone, {turns} turns (ms)", "{:.3f}"),
]


def report(label: str, runs: list[dict[str, float]], turns: int) -> None:
    print(f"\n{label}")
    print(f"{'figure':<46}" + "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs))) + f"{'median':>10}")
    for key, name, fmt in LABELS:
        values = [run[key] for run in runs]
        cells = "".join(f"{fmt.format(v):>10}" for v in values)
        print(f"{name.format(turns=turns):<46}{cells}{fmt.format(statistics.median(values)):>10}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: list[tuple[str, list[dict[str, float]]]] = []
    data_dir = tempfile.mkdtemp(prefix="corral-bench-chain-")
    sqlite = f"sqlite:///{data_dir}/chain.db"
    results.append(("SQLite", uvloop.run(measure("SQLite", sqlite, data_dir, args))))
    if not args.no_postgres:
        with scratch_postgres(args.postgres) as url:
            pg_dir = tempfile.mkdtemp(prefix="corral-bench-chain-pg-")
            results.append(("PostgreSQL", uvloop.run(measure("PostgreSQL", url, pg_dir, args))))
    print(f"{args.seconds:g} s per figure at c=1, {args.repeat} runs; one gateway process, fast upstream")
    for label, runs in results:
        report(label, runs, args.turns)


if __name__ == "__main__":
    main()
