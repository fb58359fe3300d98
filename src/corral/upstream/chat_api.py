"""Adapter for upstreams that speak only /v1/chat/completions (llama.cpp, Ollama, TGI…).

The HTTP side lives here; the translation between the two APIs is `corral.upstream.chat`.
"""

import collections
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from corral.upstream.chat import ChatStreamTranslator, build_chat_request, chat_completion_to_turn
from corral.upstream.http import SSETurnStream, post_json
from corral.upstream.turn import TurnResult
from corral.upstream.worker import Worker

log = logging.getLogger(__name__)


class ChatCompletionsAdapter:
    def __init__(self, http: aiohttp.ClientSession, worker: Worker) -> None:
        self.http = http
        self.worker = worker
        self.endpoint = f"{worker.url}/chat/completions"

    def preflight(self, request: dict[str, Any]) -> None:
        build_chat_request(request, model=request["model"], stream=False)

    def body(self, request: dict[str, Any], *, stream: bool) -> bytes:
        chat = build_chat_request(
            request, model=request["model"], stream=stream, max_tokens_field=self.worker.settings.max_tokens_field
        )
        return orjson.dumps(chat)

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        raw = await post_json(self.http, self.worker, self.endpoint, self.body(request, stream=False), client_key)
        return chat_completion_to_turn(orjson.loads(raw))

    def stream(self, request: dict[str, Any], client_key: str | None = None) -> "ChatTurnStream":
        return ChatTurnStream(self.http, self.worker, self.endpoint, self.body(request, stream=True), client_key)


class ChatTurnStream(SSETurnStream):
    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The translated events. A stream that stops without a `finish_reason` and without
        `[DONE]` after producing something was cut short (a failure). One that says `[DONE]`
        without a `finish_reason` is complete: llama-cpp-python ends whole answers that way now
        and then (seen in the real-model tests: text chunks, then `[DONE]`). One that produced
        nothing at all ends with an empty result, which the router treats as no answer."""
        translator = ChatStreamTranslator()
        produced = done = False
        last: collections.deque[bytes] = collections.deque(maxlen=3)
        async for payloads in self.payload_batches():
            batch: list[dict[str, Any]] = []
            try:
                for data in payloads:
                    last.append(data)
                    if data == b"[DONE]":
                        done = True
                        break
                    batch.extend(translator.feed(orjson.loads(data)))
            except Exception:
                if batch:  # what came before the failure still goes out first
                    yield batch
                raise
            if batch:
                produced = True
                yield batch
            if done:
                break
        if not translator.finished and produced:
            log.warning(
                "upstream %s: stream %s without a finish_reason; its last payloads: %s",
                self.worker.name,
                "said [DONE]" if done else "stopped",
                b" | ".join(last)[:2000],
            )
            if not done:
                raise self.ended_early("completion")
        closing, self.result = translator.finish()
        if closing:
            yield list(closing)
