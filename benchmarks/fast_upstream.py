"""A model server fast enough to stay out of the way: canned answers over raw asyncio.

    .venv/bin/python benchmarks/fast_upstream.py [--port 8001] [--deltas 200]

Speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies, pipelining) to answer
`POST /v1/responses` and `POST /v1/chat/completions`, streamed (`"stream": true` in the body) or
not, and `GET /v1/models`. Every answer is built once at start, so a request costs a header scan
and one socket write: well over 10k requests/s on one core, where the scripted upstream
(`corral mock-upstream`, a Starlette app) manages a few thousand and would flatter any ratio
measured against it. The input is not read; the answer is always the same text.
"""

import argparse
import asyncio
import time
from typing import Any

import orjson

MODEL = "mock-model"


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _words(count: int) -> list[str]:
    return [f"word{i} " for i in range(count - 1)] + [f"word{count - 1}"]


def responses_answers(deltas: int) -> tuple[bytes, bytes]:
    """A Response object and the event stream that builds it, as bytes."""
    pieces = _words(deltas)
    text = "".join(pieces)
    message = {
        "type": "message",
        "id": "msg_0123456789abcdef01234567",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    final = {
        "id": "resp_0123456789abcdef01234567",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "incomplete_details": None,
        "error": None,
        "model": MODEL,
        "output": [message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 5,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": deltas,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 5 + deltas,
        },
    }
    skeleton = {**final, "status": "in_progress", "output": [], "usage": None}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": message["id"], "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": skeleton},
        {"type": "response.in_progress", "response": skeleton},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**message, "content": [], "status": "in_progress"},
        },
        {"type": "response.content_part.added", **ids, "content_index": 0, "part": part},
        *(
            {"type": "response.output_text.delta", **ids, "content_index": 0, "delta": piece, "logprobs": []}
            for piece in pieces
        ),
        {"type": "response.output_text.done", **ids, "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "content_index": 0, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": final},
    ]
    stream = b"".join(_frame({**event, "sequence_number": number}) for number, event in enumerate(events))
    return orjson.dumps(final), stream


def chat_answers(deltas: int) -> tuple[bytes, bytes]:
    """A ChatCompletion and its chunk stream (with a usage chunk), as bytes."""
    pieces = _words(deltas)
    usage = {"prompt_tokens": 5, "completion_tokens": deltas, "total_tokens": 5 + deltas}
    base = {
        "id": "chatcmpl-0123456789abcdef",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
    }
    completion = {
        **base,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(pieces)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": piece}) for piece in pieces]
    frames.append(chunk({}, "stop"))
    frames.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return orjson.dumps(completion), b"".join(frames)


def _http(body: bytes, content_type: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
    return head + str(len(body)).encode() + b"\r\n\r\n" + body


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Answers:
    def __init__(self, deltas: int) -> None:
        responses_json, responses_stream = responses_answers(deltas)
        chat_json, chat_stream = chat_answers(deltas)
        sse = b"text/event-stream"
        json = b"application/json"
        self.table = {
            (b"/v1/responses", False): _http(responses_json, json),
            (b"/v1/responses", True): _http(responses_stream, sse),
            (b"/v1/chat/completions", False): _http(chat_json, json),
            (b"/v1/chat/completions", True): _http(chat_stream, sse),
        }
        models = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}
        self.models = _http(orjson.dumps(models), json)

    def answer(self, method: bytes, path: bytes, body: bytes) -> bytes:
        if method == b"GET":
            return self.models if path.startswith(b"/v1/models") or path == b"/health" else NOT_FOUND
        streamed = b'"stream":true' in body or b'"stream": true' in body
        return self.table.get((path, streamed), NOT_FOUND)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        out: list[bytes] = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end]
            length = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lowered.find(b"\r\n", at + 2)
                length = int(lowered[at + 17 : stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                break
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(b" ", 2)
            out.append(self.answers.answer(method, path, body))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int, deltas: int) -> None:
    answers = Answers(deltas)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(answers), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--deltas", type=int, default=200, help="Text deltas in a streamed answer (200).")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.deltas))


if __name__ == "__main__":
    main()
