"""Blobs: file bytes kept by key, streamed in and out in chunks.

Two stores behind one interface. `DatabaseBlobs` keeps them in the database in 1 MiB chunks, so
every replica and sandbox host that shares the database shares them (the default on PostgreSQL);
`LocalBlobs` keeps them as files under the data directory (the embedded default on SQLite, where
one process owns everything). Keys are opaque strings chosen by the caller (`container/<id>/<path>`).
"""

import asyncio
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from corral.storage.engine import Locks
from corral.storage.schema import blob_chunks

CHUNK = 1024 * 1024


class BlobStore(Protocol):
    shared: bool
    """Whether other processes (replicas, sandbox hosts) see the same blobs."""

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store (or replace) the blob; returns its size."""
        ...

    async def get(self, key: str) -> AsyncIterator[bytes] | None:
        """The blob's chunks, or None if there is none."""
        ...

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> None: ...


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory, as the chunk stream `put` takes."""
    yield data


async def rechunk(chunks: AsyncIterable[bytes], size: int = CHUNK) -> AsyncIterator[bytes]:
    """The same bytes in pieces of exactly `size` (the last one shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


class DatabaseBlobs:
    shared = True

    def __init__(self, engine: AsyncEngine, locks: Locks) -> None:
        self.engine = engine
        self.locks = locks

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Chunks go in under a temporary key and replace the old blob in one short transaction at
        the end, so readers see the old blob or the new one, never a mix."""
        staging = f"~staging/{secrets.token_hex(8)}"
        size = 0
        try:
            sequence = 0
            async for chunk in rechunk(chunks):
                async with self.locks.writing(), self.engine.begin() as connection:
                    await connection.execute(blob_chunks.insert().values(key=staging, sequence=sequence, data=chunk))
                sequence += 1
                size += len(chunk)
            async with self.locks.writing(), self.engine.begin() as connection:
                await connection.execute(blob_chunks.delete().where(blob_chunks.c.key == key))
                await connection.execute(blob_chunks.update().where(blob_chunks.c.key == staging).values(key=key))
                if sequence == 0:
                    await connection.execute(blob_chunks.insert().values(key=key, sequence=0, data=b""))
        except BaseException:
            await asyncio.shield(self.delete(staging))
            raise
        return size

    async def get(self, key: str) -> AsyncIterator[bytes] | None:
        async with self.engine.connect() as connection:
            count = await connection.scalar(sa.select(sa.func.count()).where(blob_chunks.c.key == key))
        if not count:
            return None
        return self._chunks(key, count)

    async def _chunks(self, key: str, count: int) -> AsyncIterator[bytes]:
        for sequence in range(count):
            async with self.engine.connect() as connection:
                data = await connection.scalar(
                    sa.select(blob_chunks.c.data).where(blob_chunks.c.key == key, blob_chunks.c.sequence == sequence)
                )
            if data is None:
                return
            yield bytes(data)

    async def delete(self, key: str) -> None:
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(blob_chunks.delete().where(blob_chunks.c.key == key))

    async def delete_prefix(self, prefix: str) -> None:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        async with self.locks.writing(), self.engine.begin() as connection:
            await connection.execute(blob_chunks.delete().where(blob_chunks.c.key.like(escaped + "%", escape="\\")))


class LocalBlobs:
    """Files named by a hash of the key, in directories named by a hash of the key's first two
    segments, so a prefix (one container's files) can be removed as one directory."""

    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def _group(self, key: str) -> Path:
        head = "/".join(key.split("/")[:2])
        return self.root / hashlib.sha256(head.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self._group(key) / hashlib.sha256(key.encode()).hexdigest()

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        target = self._path(key)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        handle = await asyncio.to_thread(open, staging, "wb")
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, staging, target)
        except BaseException:
            handle.close()
            await asyncio.to_thread(staging.unlink, True)
            raise
        return size

    async def get(self, key: str) -> AsyncIterator[bytes] | None:
        try:
            handle = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            return None
        return _read(handle)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def delete_prefix(self, prefix: str) -> None:
        """Prefixes are always whole groups (`container/<id>/`)."""
        await asyncio.to_thread(shutil.rmtree, self._group(prefix + "x"), True)


async def _read(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk
    finally:
        handle.close()
