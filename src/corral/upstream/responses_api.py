"""Adapter for upstreams that speak OpenAI's /v1/responses."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from corral.upstream.errors import UpstreamStreamError, from_status, unreachable
from corral.upstream.sse import iter_sse_data
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Worker

_GATEWAY_ONLY = ("previous_response_id", "conversation", "background", "metadata", "stream_options", "store")
_PRELUDE = frozenset(("response.created", "response.in_progress", "response.queued"))
_TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))


def upstream_body(request: dict[str, Any], *, stream: bool) -> bytes:
    """The gateway keeps state: the upstream never stores and never sees gateway-only fields."""
    body = {key: value for key, value in request.items() if key not in _GATEWAY_ONLY}
    body["stream"] = stream
    body["store"] = False
    return orjson.dumps(body)


def turn_from_response(response: dict[str, Any]) -> TurnResult:
    return TurnResult(
        output=response.get("output") or [],
        usage=response.get("usage"),
        status=response.get("status") or "completed",
        incomplete_details=response.get("incomplete_details"),
        error=response.get("error"),
        model=response.get("model"),
    )


class ResponsesAPIAdapter:
    def __init__(self, http: aiohttp.ClientSession, worker: Worker) -> None:
        self.http = http
        self.worker = worker
        self.endpoint = f"{worker.url}/responses"

    def preflight(self, request: dict[str, Any]) -> None:
        return None

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        try:
            async with self.http.post(
                self.endpoint, data=upstream_body(request, stream=False), headers=self.worker.headers(client_key)
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise from_status(self.worker.name, response.status, raw)
        except aiohttp.ClientError as exc:
            raise unreachable(self.worker.name, str(exc) or type(exc).__name__) from exc
        return turn_from_response(orjson.loads(raw))

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> "ResponsesTurnStream":
        return ResponsesTurnStream(self, request, client_key)


class ResponsesTurnStream:
    def __init__(self, adapter: ResponsesAPIAdapter, request: dict[str, Any], client_key: str | None = None) -> None:
        self.adapter = adapter
        self.request = request
        self.client_key = client_key
        self.result: TurnResult | None = None
        self._response: aiohttp.ClientResponse | None = None

    async def open(self) -> None:
        worker = self.adapter.worker
        try:
            response = await self.adapter.http.post(
                self.adapter.endpoint,
                data=upstream_body(self.request, stream=True),
                headers=worker.headers(self.client_key),
            )
        except aiohttp.ClientError as exc:
            raise unreachable(worker.name, str(exc) or type(exc).__name__) from exc
        if response.status >= 400:
            raw = await response.read()
            response.release()
            raise from_status(worker.name, response.status, raw)
        self._response = response

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        assert self._response is not None, "open() first"
        try:
            async for data in iter_sse_data(self._response.content.iter_any()):
                if data == b"[DONE]":
                    break
                event = orjson.loads(data)
                kind = event.get("type")
                if kind in _PRELUDE:
                    continue
                if kind in _TERMINAL:
                    self.result = turn_from_response(event["response"])
                    break
                if kind == "error":
                    error = event.get("error") if isinstance(event.get("error"), dict) else event
                    raise UpstreamStreamError(str(error.get("message") or "upstream error"), error.get("code"))
                yield event
        except aiohttp.ClientError as exc:
            raise UpstreamStreamError(f"Upstream '{self.adapter.worker.name}' stream broke: {exc}") from exc
        finally:
            await self.aclose()
        if self.result is None:
            raise UpstreamStreamError(
                f"Upstream '{self.adapter.worker.name}' ended its stream before the response finished."
            )

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
