"""The mock's /v1/chat/completions: a ChatCompletion, or its chunk stream."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from corral.mock_upstream.script import Turn, deltas


def _usage(turn: Turn, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": turn.input_tokens + output_tokens,
    }


def _text(turn: Turn) -> str:
    return " ".join(turn.text.split()[:3]) if turn.length else turn.text


def completion(body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if turn.calls else _text(turn)}
    if turn.reasoning:
        message["reasoning_content"] = turn.reasoning
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{secrets.token_hex(8)}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in turn.calls
        ]
    finish = "tool_calls" if turn.calls else ("length" if turn.length else "stop")
    return {
        "id": f"chatcmpl-{secrets.token_hex(8)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(turn, len((message["content"] or "").split()) + 1),
    }


async def stream(body: dict[str, Any], turn: Turn) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{secrets.token_hex(8)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    pause = turn.slow_ms / 1000
    yield chunk({"role": "assistant", "content": ""})
    if turn.reasoning:
        yield chunk({"reasoning_content": turn.reasoning})
    if turn.calls:
        for index, call in enumerate(turn.calls):
            call_id = f"call_{secrets.token_hex(8)}"
            half = len(call.arguments) // 2
            first = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [first]})
            for piece in (call.arguments[:half], call.arguments[half:]):
                if pause:
                    await asyncio.sleep(pause)
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        finish = "tool_calls"
    else:
        for number, piece in enumerate(deltas(_text(turn))):
            if pause:
                await asyncio.sleep(pause)
            if (turn.die or turn.fail) and number == 1:
                if turn.fail:
                    yield (
                        b"data: "
                        + orjson.dumps({"error": {"message": "mock failure", "code": "server_error"}})
                        + b"\n\n"
                    )
                    return
                raise ConnectionResetError("mock upstream dies mid-stream")
            yield chunk({"content": piece})
        finish = "length" if turn.length else "stop"
    yield chunk({}, finish)
    if (body.get("stream_options") or {}).get("include_usage"):
        yield (
            b"data: " + orjson.dumps({**base, "choices": [], "usage": _usage(turn, len(turn.text.split()))}) + b"\n\n"
        )
    yield b"data: [DONE]\n\n"
