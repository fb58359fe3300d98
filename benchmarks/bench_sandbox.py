"""Local sandboxes: container creation (cold and from the warm pool), Python and shell round trips,
and idle memory per container.

    .venv/bin/python benchmarks/bench_sandbox.py [--containers 4]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corral.sandbox_app import default_sandbox_python
from corral.sessions.backends.local import LocalSandboxBackend


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def descendants(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += descendants(int(child))
    return found


async def wait_for_pool(backend: LocalSandboxBackend) -> None:
    """The pool refills in the background; wait (bounded) until a warm sandbox is ready."""
    for _ in range(600):
        if backend.pool:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the warm pool did not refill")


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:8.2f} ms   max {max(values) * 1000:8.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=4)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="corral-sandbox-bench-"))
    python = default_sandbox_python()

    cold_backend = LocalSandboxBackend(data_dir / "cold", python=python, warm_pool_size=0)
    await cold_backend.start()
    cold = []
    for n in range(args.containers):
        started = time.perf_counter()
        await cold_backend.create(f"cntr_cold{n}")
        await cold_backend.run_python(f"cntr_cold{n}", "1", timeout_s=60)
        cold.append(time.perf_counter() - started)
    await cold_backend.aclose()

    warm_backend = LocalSandboxBackend(data_dir / "warm", python=python, warm_pool_size=1)
    await warm_backend.start()
    warm = []
    for n in range(args.containers):
        await wait_for_pool(warm_backend)
        started = time.perf_counter()
        await warm_backend.create(f"cntr_warm{n}")
        await warm_backend.run_python(f"cntr_warm{n}", "1", timeout_s=60)
        warm.append(time.perf_counter() - started)

    python_rtt, shell_rtt = [], []
    for _ in range(50):
        started = time.perf_counter()
        await warm_backend.run_python("cntr_warm0", "x = 1", timeout_s=30)
        python_rtt.append(time.perf_counter() - started)
        started = time.perf_counter()
        await warm_backend.run_shell("cntr_warm0", "true", timeout_s=30)
        shell_rtt.append(time.perf_counter() - started)

    pids: list[int] = []
    for n in range(args.containers):
        sandbox = warm_backend.sandboxes[f"cntr_warm{n}"]
        for session in (sandbox.kernel, sandbox.shell):
            if session is not None and session.process is not None:
                pids += descendants(session.process.pid)
    idle = pss_kib(pids) / args.containers / 1024
    await warm_backend.aclose()

    print(f"sandbox limits: {warm_backend.limits.describe() if warm_backend.limits else 'n/a'}")
    print(f"create + first Python call, cold      {ms(cold)}")
    speedup = statistics.median(cold) / statistics.median(warm)
    print(f"create + first Python call, warm pool {ms(warm)}   ({speedup:.0f}x faster)")
    print(f"Python round trip                     {ms(python_rtt)}")
    print(f"shell round trip                      {ms(shell_rtt)}")
    print(f"idle memory per container (PSS, kernel + shell): {idle:.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
