"""Loading a long previous_response_id chain: time and SQL statements, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_chain.py [--turns 200] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Builds a chain of N stored responses (one input and one output item each) and measures
`load_chain` on the newest: the statement count must not grow with N.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fixtures.databases import fresh_postgres_url

from corral.storage import Store


async def measure(url: str, turns: int) -> tuple[float, float, int]:
    store = await Store.open(url)
    previous = None
    for turn in range(turns):
        response = {
            "id": f"resp_{turn}",
            "created_at": turn,
            "status": "completed",
            "output": [{"id": f"msg_out_{turn}", "type": "message", "role": "assistant", "content": []}],
        }
        item = {"id": f"msg_in_{turn}", "type": "message", "role": "user", "content": []}
        await store.responses.save("t", response, [item], previous_response_id=previous, conversation_id=None)
        previous = response["id"]
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        items = await store.responses.load_chain("t", previous or "")
        timings.append(time.perf_counter() - started)
    assert len(items) == 2 * turns
    await store.close()
    return statistics.median(timings) * 1000, max(timings) * 1000, statements // 20


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    sqlite_url = f"sqlite:///{tempfile.mkdtemp()}/chain.db"
    print(f"{'database':<12}{'turns':>7}{'p50 ms':>10}{'max ms':>10}{'statements':>12}")
    for turns in (10, args.turns):
        p50, worst, statements = await measure(sqlite_url.replace("chain", f"chain{turns}"), turns)
        print(f"{'sqlite':<12}{turns:>7}{p50:>10.2f}{worst:>10.2f}{statements:>12}")
        with fresh_postgres_url() as url:
            p50, worst, statements = await measure(url, turns)
        print(f"{'postgresql':<12}{turns:>7}{p50:>10.2f}{worst:>10.2f}{statements:>12}")


if __name__ == "__main__":
    asyncio.run(main())
