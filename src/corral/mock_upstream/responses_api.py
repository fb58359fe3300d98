"""The mock's /v1/responses: a Response object, or OpenAI's event stream."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from corral.mock_upstream.script import Turn, deltas


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _usage(turn: Turn, output_words: int) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_words,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.input_tokens + output_words,
    }


def _logprobs(turn: Turn) -> list[Any] | None:
    return None if turn.null_logprobs else []


def _items(turn: Turn) -> list[dict[str, Any]]:
    status = "incomplete" if turn.length else "completed"
    items: list[dict[str, Any]] = []
    if turn.reasoning:
        items.append(
            {
                "type": "reasoning",
                "id": _id("rs"),
                "summary": [],
                "content": [{"type": "reasoning_text", "text": turn.reasoning}],
            }
        )
    if turn.calls:
        for call in turn.calls:
            items.append(
                {
                    "type": "function_call",
                    "id": _id("fc"),
                    "call_id": _id("call"),
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "completed",
                }
            )
    else:
        text = turn.text
        if turn.length:
            text = " ".join(text.split()[:3])
        items.append(
            {
                "type": "message",
                "id": _id("msg"),
                "role": "assistant",
                "status": status,
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": _logprobs(turn)}],
            }
        )
    return items


def response_object(body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    items = _items(turn)
    words = sum(len(str(item).split()) for item in items) // 4 + 1
    return {
        "id": _id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if turn.length else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if turn.length else None,
        "error": None,
        "model": body.get("model"),
        "output": items,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "usage": _usage(turn, words),
    }


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def stream(body: dict[str, Any], turn: Turn) -> AsyncIterator[bytes]:
    final = response_object(body, turn)
    seq = 0

    def event(kind: str, **payload: Any) -> bytes:
        nonlocal seq
        frame = _frame({"type": kind, "sequence_number": seq, **payload})
        seq += 1
        return frame

    skeleton = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    yield event("response.created", response=skeleton)
    yield event("response.in_progress", response=skeleton)
    pause = turn.slow_ms / 1000
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "content": [], "status": "in_progress"},
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": _logprobs(turn)}
            yield event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
            for number, piece in enumerate(deltas(text)):
                if pause:
                    await asyncio.sleep(pause)
                if (turn.die or turn.fail) and number == 1:
                    if turn.fail:
                        yield event(
                            "error",
                            error={
                                "type": "server_error",
                                "code": "server_error",
                                "message": "mock failure",
                                "param": None,
                            },
                        )
                        return
                    raise ConnectionResetError("mock upstream dies mid-stream")
                yield event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    logprobs=_logprobs(turn),
                )
            yield event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=_logprobs(turn),
            )
            yield event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part={**part, "text": text},
            )
            yield event("response.output_item.done", output_index=index, item=item)
        elif item["type"] == "function_call":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            arguments = item["arguments"]
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                if pause:
                    await asyncio.sleep(pause)
                yield event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=arguments,
            )
            yield event("response.output_item.done", output_index=index, item=item)
        else:
            yield event("response.output_item.added", output_index=index, item={**item, "content": []})
            yield event(
                "response.reasoning_text.delta",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                delta=item["content"][0]["text"],
            )
            yield event(
                "response.reasoning_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=item["content"][0]["text"],
            )
            yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.incomplete" if turn.length else "response.completed", response=final)
