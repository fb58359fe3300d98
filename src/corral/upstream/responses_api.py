"""Adapter for upstreams that speak OpenAI's /v1/responses."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from corral.upstream.errors import UpstreamStreamError
from corral.upstream.http import SSETurnStream, post_json
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

    checks_requests = False
    """The upstream speaks the execution request's own API: nothing to refuse before calling it."""

    def preflight(self, request: dict[str, Any]) -> None:
        return None

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        raw = await post_json(self.http, self.worker, self.endpoint, upstream_body(request, stream=False), client_key)
        return turn_from_response(orjson.loads(raw))

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> "ResponsesTurnStream":
        return ResponsesTurnStream(
            self.http, self.worker, self.endpoint, upstream_body(request, stream=True), client_key
        )


class ResponsesTurnStream(SSETurnStream):
    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        finished = False
        async for payloads in self.payload_batches():
            batch: list[dict[str, Any]] = []
            try:
                for data in payloads:
                    if data == b"[DONE]":
                        finished = True
                        break
                    event = orjson.loads(data)
                    kind = event.get("type")
                    if kind in _PRELUDE:
                        continue
                    if kind in _TERMINAL:
                        self.result = turn_from_response(event["response"])
                        finished = True
                        break
                    if kind == "error":
                        error = event.get("error") if isinstance(event.get("error"), dict) else event
                        raise UpstreamStreamError(str(error.get("message") or "upstream error"), error.get("code"))
                    batch.append(event)
            except Exception:
                if batch:  # what came before the failure still goes out first
                    yield batch
                raise
            if batch:
                yield batch
            if finished:
                break
        if self.result is None:
            raise self.ended_early("response")
