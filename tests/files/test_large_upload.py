"""A 200 MB upload, generated on the fly and streamed, through a real `corral serve` process whose
memory is sampled while the upload runs: it stays flat (the file is never held in memory)."""

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream
from tests.support.processes import CorralProcess

SIZE = 200 * 1024 * 1024
MAX_GROWTH = 96 * 1024 * 1024
"""Generous: the gateway buffers about a megabyte at a time; holding the file would add 200 MB."""
PATTERN = hashlib.sha256(b"corral").digest() * 2048


class GeneratedFile(io.RawIOBase):
    """`size` bytes of a repeating pattern, made as they are read (nothing held), seekable so that
    the client can tell its length."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, min(self.size, base + offset))
        return self.position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.size - self.position)
        start = self.position % len(PATTERN)
        chunk = (PATTERN[start:] + PATTERN * (count // len(PATTERN) + 1))[:count]
        buffer[:count] = chunk
        self.position += count
        return count


def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    source = GeneratedFile(size)
    while block := source.read(1024 * 1024):
        digest.update(block)
    return digest.hexdigest()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler:
    """The largest RSS of a process while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with fresh_postgres_url() as url:
            yield url


def test_a_200_mb_upload_keeps_gateway_memory_flat(
    database: str | None, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    settings = {
        "upstreams": [{"url": mock_upstream.url}],
        "sandbox": {"warm_pool_size": 0, "disk_mb": 64},
        **({"database": database} if database else {}),
    }
    gateway = CorralProcess("serve", tmp_path / "gateway", settings)
    try:
        client = gateway.client()
        client.files.create(file=("warm.bin", b"w" * 2 * 1024 * 1024), purpose="user_data")
        pid = gateway.process.pid
        baseline = rss(pid)
        started = time.monotonic()
        with Sampler(pid) as sampler:
            made = client.files.create(file=("big.bin", GeneratedFile(SIZE)), purpose="user_data")
        took = time.monotonic() - started
        growth = sampler.peak - baseline
        print(
            f"\n[{'postgres' if database else 'sqlite'}] 200 MB upload in {took:.1f}s: gateway RSS "
            f"{baseline / 2**20:.0f} MiB before, peak {sampler.peak / 2**20:.0f} MiB, growth {growth / 2**20:.1f} MiB"
        )
        assert made.bytes == SIZE
        assert growth < MAX_GROWTH, f"gateway RSS grew by {growth / 2**20:.0f} MiB during a 200 MB upload"

        digest = hashlib.sha256()
        with client.files.with_streaming_response.content(made.id) as response, Sampler(pid) as download:
            for block in response.iter_bytes(1024 * 1024):
                digest.update(block)
        assert digest.hexdigest() == expected_sha256(SIZE), "the bytes come back as they went in"
        assert download.peak - baseline < MAX_GROWTH, "downloads stream too"
        client.files.delete(made.id)
    finally:
        gateway.stop()
