"""A sandbox host against the local backend, measured in one run: Python and shell round trips,
file upload and download throughput, and what a host adds per call.

Needs root (as the gateway), bubblewrap and a PostgreSQL server (the hosts' shared database; a
scratch database is made and dropped):

    .venv/bin/python benchmarks/bench_sandbox_host.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corral.sandbox_app import default_sandbox_python
from corral.sessions.backends.base import SandboxBackend
from corral.sessions.backends.local import LocalSandboxBackend
from corral.sessions.backends.remote import RemoteSandboxBackend

ROUNDS = 60
FILE_MB = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed(rounds: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def payload(size: int) -> AsyncIterator[bytes]:
    chunk = os.urandom(1024 * 1024)
    for _ in range(size // len(chunk)):
        yield chunk


async def measure(backend: SandboxBackend, container_id: str) -> dict[str, float]:
    await backend.create(container_id)
    await backend.run_python(container_id, "1", timeout_s=60)
    python = await timed(ROUNDS, lambda: backend.run_python(container_id, "x = 1", timeout_s=30))
    shell = await timed(ROUNDS, lambda: backend.run_shell(container_id, "true", timeout_s=30))
    size = FILE_MB * 1024 * 1024
    started = time.perf_counter()
    await backend.write_file(container_id, "big.bin", payload(size))
    upload = time.perf_counter() - started
    started = time.perf_counter()
    content = await backend.read_file(container_id, "big.bin")
    async for _ in content.chunks:
        pass
    download = time.perf_counter() - started
    await backend.destroy(container_id)
    return {
        "python": statistics.median(python),
        "shell": statistics.median(shell),
        "upload": FILE_MB / upload,
        "download": FILE_MB / download,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    python = default_sandbox_python()
    root = Path(tempfile.mkdtemp(prefix="corral-host-bench-"))
    name = f"corral_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.postgres.replace("postgresql://", "postgres://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = args.postgres.rsplit("/", 1)[0] + f"/{name}"
    port, secret = free_port(), secrets.token_hex(16)
    sandbox = {"python": python, "warm_pool_size": 1, "disk_mb": FILE_MB * 4, "host_secret": secret}
    config = root / "host.yaml"
    config.write_text(
        yaml.safe_dump({"port": port, "data_dir": str(root / "host"), "database": database, "sandbox": sandbox})
    )
    host = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "corral.cli", "sandbox-host", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    local = LocalSandboxBackend(root / "local", python=python, warm_pool_size=1, disk_mb=FILE_MB * 4)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            remote = RemoteSandboxBackend("bench", f"http://127.0.0.1:{port}", secret, http)
            await local.start()
            near = await measure(local, "cntr_local")
            far = await measure(remote, "cntr_remote")
    finally:
        await local.aclose()
        host.send_signal(signal.SIGTERM)
        await asyncio.wait_for(host.wait(), 60)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    print(f"{'':32}{'local':>12}{'sandbox host':>16}{'host adds':>14}")
    for key, label in (("python", "Python round trip (x = 1)"), ("shell", "shell round trip (true)")):
        added = (far[key] - near[key]) * 1000
        print(f"{label:32}{near[key] * 1000:9.2f} ms{far[key] * 1000:13.2f} ms{added:11.2f} ms")
    for key, label in (("upload", f"upload {FILE_MB} MiB"), ("download", f"download {FILE_MB} MiB")):
        ratio = far[key] / near[key]
        print(f"{label:32}{near[key]:7.0f} MiB/s{far[key]:11.0f} MiB/s{ratio:13.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
