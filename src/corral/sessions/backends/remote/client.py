"""RemoteSandboxBackend: the SandboxBackend interface, served by a sandbox host over HTTP.

Cancelling a call (a client that left, a cancelled background response) closes its HTTP request;
the host sees the disconnect and cancels the execution there, so the kernel is interrupted where
it runs.
"""

import weakref
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from corral.sessions.backends.base import (
    FileContent,
    FileListing,
    PythonResult,
    SandboxUnavailableError,
    ShellResult,
)
from corral.sessions.backends.remote import wire

CALL_GRACE_S = 30.0
CHUNK = 1024 * 1024


class RemoteSandboxBackend:
    name = "remote"

    def __init__(self, host_id: str, url: str, secret: str, http: aiohttp.ClientSession) -> None:
        self.host_id = host_id
        self.url = url.rstrip("/")
        self.http = http
        self.headers = {wire.SECRET_HEADER: f"Bearer {secret}"}

    async def _request(self, method: str, path: str, *, json: Any = None, timeout_s: float = 60.0) -> Any:
        try:
            async with self.http.request(
                method,
                self.url + path,
                data=orjson.dumps(json) if json is not None else None,
                headers={**self.headers, "content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                body = orjson.loads(await response.read() or b"{}")
                if response.status >= 400:
                    raise wire.error(body)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SandboxUnavailableError(f"sandbox host {self.host_id} did not answer") from exc

    async def create(self, container_id: str, *, memory_limit: str = "1g") -> str:
        body = await self._request("POST", wire.container_path(container_id), json={"memory_limit": memory_limit})
        return str(body["location"])

    async def ensure_running(self, container_id: str, *, memory_limit: str = "1g") -> None:
        await self._request("POST", wire.container_path(container_id, "ensure"), json={"memory_limit": memory_limit})

    async def is_running(self, container_id: str) -> bool:
        body = await self._request("GET", wire.container_path(container_id))
        return bool(body["running"])

    async def run_python(self, container_id: str, code: str, *, timeout_s: float) -> PythonResult:
        body = await self._request(
            "POST",
            wire.container_path(container_id, "python"),
            json={"code": code, "timeout_s": timeout_s},
            timeout_s=timeout_s + CALL_GRACE_S,
        )
        return wire.python_result(body)

    async def run_shell(
        self, container_id: str, command: str, *, timeout_s: float, max_output_length: int | None = None
    ) -> ShellResult:
        body = await self._request(
            "POST",
            wire.container_path(container_id, "shell"),
            json={"command": command, "timeout_s": timeout_s, "max_output_length": max_output_length},
            timeout_s=timeout_s + CALL_GRACE_S,
        )
        return wire.shell_result(body)

    async def list_files(self, container_id: str) -> FileListing:
        return wire.listing(await self._request("GET", wire.container_path(container_id, "files")))

    async def read_file(self, container_id: str, path: str) -> FileContent:
        try:
            response = await self.http.get(
                self.url + wire.file_path(container_id, path),
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SandboxUnavailableError(f"sandbox host {self.host_id} did not answer") from exc
        if response.status >= 400:
            body = orjson.loads(await response.read() or b"{}")
            response.release()
            raise wire.error(body)
        chunks = _body(response)
        weakref.finalize(chunks, response.release)
        return FileContent(int(response.headers.get("content-length", "0")), chunks)

    async def write_file(self, container_id: str, path: str, chunks: AsyncIterable[bytes]) -> int:
        try:
            async with self.http.put(
                self.url + wire.file_path(container_id, path),
                data=chunks,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
            ) as response:
                body = orjson.loads(await response.read() or b"{}")
                if response.status >= 400:
                    raise wire.error(body)
                return int(body["size"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SandboxUnavailableError(f"sandbox host {self.host_id} did not answer") from exc

    async def delete_file(self, container_id: str, path: str) -> bool:
        body = await self._request("DELETE", wire.file_path(container_id, path))
        return bool(body["deleted"])

    async def install_skill(self, container_id: str, name: str, archive: bytes) -> None:
        try:
            async with self.http.put(
                self.url + wire.container_path(container_id, "skills/" + quote(name, safe="")),
                data=archive,
                headers={**self.headers, "content-type": "application/zip"},
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response:
                if response.status >= 400:
                    raise wire.error(orjson.loads(await response.read() or b"{}"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SandboxUnavailableError(f"sandbox host {self.host_id} did not answer") from exc

    async def stop(self, container_id: str) -> None:
        await self._request("POST", wire.container_path(container_id, "stop"))

    async def destroy(self, container_id: str) -> None:
        await self._request("DELETE", wire.container_path(container_id))

    async def aclose(self) -> None:
        """The HTTP session belongs to whoever made this client."""


async def _body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            yield chunk
    finally:
        response.release()
