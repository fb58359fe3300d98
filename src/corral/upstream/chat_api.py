"""Adapter for upstreams that speak only /v1/chat/completions (llama.cpp, Ollama, TGI…).

The HTTP side lives here; the translation between the two APIs is `corral.upstream.chat`.
"""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from corral.upstream.chat import ChatStreamTranslator, build_chat_request, chat_completion_to_turn
from corral.upstream.errors import UpstreamStreamError, from_status, unreachable
from corral.upstream.sse import iter_sse_data
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Worker


class ChatCompletionsAdapter:
    def __init__(self, http: aiohttp.ClientSession, worker: Worker) -> None:
        self.http = http
        self.worker = worker
        self.endpoint = f"{worker.url}/chat/completions"

    def preflight(self, request: dict[str, Any]) -> None:
        build_chat_request(request, model=request["model"], stream=False)

    def body(self, request: dict[str, Any], *, stream: bool) -> bytes:
        chat = build_chat_request(
            request,
            model=request["model"],
            stream=stream,
            max_tokens_field=self.worker.settings.max_tokens_field,
        )
        return orjson.dumps(chat)

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        try:
            async with self.http.post(
                self.endpoint, data=self.body(request, stream=False), headers=self.worker.headers(client_key)
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise from_status(self.worker.name, response.status, raw)
        except aiohttp.ClientError as exc:
            raise unreachable(self.worker.name, str(exc) or type(exc).__name__) from exc
        return chat_completion_to_turn(orjson.loads(raw))

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> "ChatTurnStream":
        return ChatTurnStream(self, request, client_key)


class ChatTurnStream:
    def __init__(self, adapter: ChatCompletionsAdapter, request: dict[str, Any], client_key: str | None = None) -> None:
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
                data=self.adapter.body(self.request, stream=True),
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
        translator = ChatStreamTranslator()
        finished = False
        try:
            async for data in iter_sse_data(self._response.content.iter_any()):
                if data == b"[DONE]":
                    finished = True
                    break
                for event in translator.feed(orjson.loads(data)):
                    yield event
        except aiohttp.ClientError as exc:
            raise UpstreamStreamError(f"Upstream '{self.adapter.worker.name}' stream broke: {exc}") from exc
        finally:
            await self.aclose()
        if not finished and not translator.finished:
            raise UpstreamStreamError(
                f"Upstream '{self.adapter.worker.name}' ended its stream before the completion finished."
            )
        closing, self.result = translator.finish()
        for event in closing:
            yield event

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
