"""`corral` as a real process for the operator tests, and a small chat-only model server."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import free_port, wait_for


def corral(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@dataclass
class Served:
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()


@contextmanager
def serving(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[Served]:
    """`corral serve` on a free port; its whole output (log included) goes to `log_path`."""
    port = free_port()
    with log_path.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", "serve", "--port", str(port), *args],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/health")
            yield Served(f"http://127.0.0.1:{port}", log_path)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


MODEL = "chatty"


@dataclass
class ChatOnlyServer:
    """Speaks only /v1/chat/completions, as llama-cpp-python does: a forced tool_choice yields a
    call of that function, anything else a short text (streamed as chunks when asked)."""

    paths: list[str] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "me"}]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.paths.append(request.url.path)
        if "messages" not in body:
            return JSONResponse({"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]}, 422)
        choice = body.get("tool_choice")
        message: dict[str, Any] = {"role": "assistant", "content": "Hello there."}
        finish = "stop"
        if isinstance(choice, dict):
            name = choice["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
                ],
            }
            finish = "tool_calls"
        if body.get("stream"):
            return StreamingResponse(self._chunks(message["content"] or ""), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    @staticmethod
    async def _chunks(text: str) -> Any:
        for piece, finish in ((text, None), ("", "stop")):
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": finish}],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
