"""The HTTP exchanges with upstreams: a POST whose answer is read whole, streamed as SSE, or relayed
as it is (the chat/completions passthrough)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import aiohttp

from corral.upstream.errors import UpstreamStreamError, from_status, unreachable
from corral.upstream.sse import iter_sse_batches
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Worker

on_accepted: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("upstream_on_accepted", default=None)
"""Awaited when an upstream answers a streamed call with a success status, before its first event:
the engine tells its own client the response was created without waiting for the model's first
token (a long prompt's prefill, a queue at the model server)."""


async def post(
    http: aiohttp.ClientSession, worker: Worker, url: str, body: bytes, client_key: str | None
) -> aiohttp.ClientResponse:
    """The upstream's answer to a POST, its body not read yet (the caller releases it); an HTTP
    error or an unreachable upstream raises UpstreamError."""
    try:
        response = await http.post(url, data=body, headers=worker.headers(client_key))
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(worker.name, str(exc) or type(exc).__name__) from exc
    if response.status >= 400:
        raw = await response.read()
        response.release()
        raise from_status(worker.name, response.status, raw)
    return response


async def post_json(
    http: aiohttp.ClientSession, worker: Worker, url: str, body: bytes, client_key: str | None
) -> bytes:
    """The whole answer to a POST."""
    response = await post(http, worker, url, body, client_key)
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(worker.name, str(exc) or type(exc).__name__) from exc
    finally:
        response.release()


class SSETurnStream:
    """One streamed model call. Subclasses turn the SSE payloads into Responses events."""

    def __init__(
        self, http: aiohttp.ClientSession, worker: Worker, url: str, body: bytes, client_key: str | None
    ) -> None:
        self.http = http
        self.worker = worker
        self.url = url
        self.body = body
        self.client_key = client_key
        self.result: TurnResult | None = None
        self._response: aiohttp.ClientResponse | None = None

    async def open(self) -> None:
        self._response = await post(self.http, self.worker, self.url, self.body, self.client_key)
        if (accepted := on_accepted.get()) is not None:
            await accepted()

    async def payload_batches(self) -> AsyncIterator[list[bytes]]:
        """The events' data, a list per upstream chunk (`iter_sse_batches`); a broken connection
        becomes UpstreamStreamError; closes at the end."""
        assert self._response is not None, "open() first"
        try:
            async for batch in iter_sse_batches(self._response.content.iter_any()):
                yield batch
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise UpstreamStreamError(f"Upstream '{self.worker.name}' stream broke: {reason}") from exc
        finally:
            await self.aclose()

    def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The Responses events, a non-empty list of those that arrived together at a time."""
        raise NotImplementedError

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.batches():
            for event in batch:
                yield event

    def ended_early(self, what: str) -> UpstreamStreamError:
        return UpstreamStreamError(f"Upstream '{self.worker.name}' ended its stream before the {what} finished.")

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
