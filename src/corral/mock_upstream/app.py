"""The mock upstream's HTTP app."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from corral.mock_upstream import chat_api, responses_api
from corral.mock_upstream.script import Conversation, Turn, deltas, from_chat, from_responses, plan, text_of

MODELS = ("mock-model", "mock-model-2")


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _error(status: int) -> Response:
    return _json(
        {
            "error": {
                "message": f"mock error {status}",
                "type": "server_error" if status >= 500 else "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        status,
    )


async def _observed(frames: AsyncIterator[bytes], record: dict[str, Any]) -> AsyncIterator[bytes]:
    """Records whether the stream ran to its end or its reader went away (`stream_outcome`)."""
    record["stream_outcome"] = "streaming"
    try:
        async for frame in frames:
            yield frame
        record["stream_outcome"] = "complete"
    finally:
        if record["stream_outcome"] == "streaming":
            record["stream_outcome"] = "cancelled"


def build_app() -> Starlette:
    received: list[dict[str, Any]] = []

    async def answer(
        request: Request,
        reader: Callable[[dict[str, Any]], Conversation],
        whole: Callable[[dict[str, Any], Turn], dict[str, Any]],
        streamer: Callable[[dict[str, Any], Turn], AsyncIterator[bytes]],
    ) -> Response:
        body = orjson.loads(await request.body())
        record: dict[str, Any] = {"path": request.url.path, "body": body, "headers": dict(request.headers)}
        received.append(record)
        if body.get("model") not in MODELS:
            return _json(
                {
                    "error": {
                        "message": f"The model '{body.get('model')}' does not exist",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": "model_not_found",
                    }
                },
                404,
            )
        turn = plan(reader(body))
        if turn.error_status:
            return _error(turn.error_status)
        if body.get("stream"):
            return StreamingResponse(_observed(streamer(body, turn), record), media_type="text/event-stream")
        if turn.slow_ms:
            await asyncio.sleep(turn.slow_ms / 1000 * len(deltas(turn.text)))
        return _json(whole(body, turn))

    async def responses(request: Request) -> Response:
        return await answer(request, from_responses, responses_api.response_object, responses_api.stream)

    async def chat(request: Request) -> Response:
        return await answer(request, from_chat, chat_api.completion, chat_api.stream)

    async def tokenize(request: Request) -> Response:
        """vLLM's `POST /tokenize` with chat `messages`: one token per word, and ten per tool.
        A message saying `[[no-tokenizer]]` gets a 404, as from a server without the endpoint."""
        body = orjson.loads(await request.body())
        received.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
        texts = [text_of(message.get("content")) for message in body.get("messages") or []]
        if "messages" not in body or any("[[no-tokenizer]]" in text for text in texts):
            return _json({"detail": "Not Found"}, 404)
        count = sum(len(text.split()) for text in texts) + 10 * len(body.get("tools") or [])
        return _json({"count": count, "max_model_len": 4096, "tokens": list(range(count))})

    async def models(request: Request) -> Response:
        return _json(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "mock"} for m in MODELS],
            }
        )

    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            received.clear()
        return _json(received)

    return Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/tokenize", tokenize, methods=["POST"]),
            Route("/_mock/requests", requests_log, methods=["GET", "DELETE"]),
        ]
    )


def serve(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        build_app(),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
