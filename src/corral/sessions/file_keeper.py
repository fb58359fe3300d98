"""Container files kept in the blob store every replica shares, so a container whose sandbox host
is lost comes back on another host with its files.

Kept: uploads, and what a finished call wrote (the files it created or changed), under
`container/<id>/<path>`. Only when containers may run in other processes (a shared database);
the embedded default keeps files on its own disk only.
"""

import logging

from corral.sessions.backends.base import SandboxBackend
from corral.storage.blobs import BlobStore

log = logging.getLogger(__name__)


def _key(container_id: str, path: str) -> str:
    return f"container/{container_id}/{path}"


class FileKeeper:
    def __init__(self, blobs: BlobStore, *, enabled: bool) -> None:
        self.blobs = blobs
        self.enabled = enabled

    async def keep(self, backend: SandboxBackend, container_id: str, paths: list[str]) -> None:
        if not self.enabled:
            return
        for path in paths:
            try:
                content = await backend.read_file(container_id, path)
            except FileNotFoundError:
                await self.blobs.delete(_key(container_id, path))
                continue
            await self.blobs.put(_key(container_id, path), content.chunks)

    async def forget(self, container_id: str, paths: list[str]) -> None:
        if self.enabled:
            for path in paths:
                await self.blobs.delete(_key(container_id, path))

    async def forget_container(self, container_id: str) -> None:
        if self.enabled:
            await self.blobs.delete_prefix(f"container/{container_id}/")

    async def restore(self, backend: SandboxBackend, container_id: str, paths: list[str]) -> list[str]:
        """Write the kept files into the container on its new host; returns the paths not found."""
        missing = []
        for path in paths:
            chunks = await self.blobs.get(_key(container_id, path))
            if chunks is None:
                missing.append(path)
                continue
            await backend.write_file(container_id, path, chunks)
        return missing
