"""Chat completion chunks as OpenAI's Responses stream events.

Item-level events only: no `sequence_number` and no `response.*` lifecycle events (the engine
adds both), `output_index` counted from 0 within the turn, in the order items are added. The
sequences are OpenAI's (and its gpt-oss reference server's for reasoning text):

- reasoning: `output_item.added` → `content_part.added` (reasoning_text) →
  `reasoning_text.delta`… → `reasoning_text.done` → `content_part.done` → `output_item.done`;
- message: `output_item.added` → per part `content_part.added` → `output_text.delta`… (or
  `refusal.delta`…) → `output_text.done` (`refusal.done`) → `content_part.done`; then
  `output_item.done`;
- function call: `output_item.added` (once its name is known, so the engine can tell whose call
  it is) → `function_call_arguments.delta`… → `function_call_arguments.done` → `output_item.done`.

Reasoning closes when text or a tool call starts, text closes when reasoning or a tool call
starts. Tool calls stream interleaved by their chat `index`, so they stay open until `finish()`
and close in `output_index` order. Items still open at a `length`/`content_filter` finish end
`incomplete`. Plain dicts throughout: this runs once per chunk.
"""

from typing import Any

from corral.protocol.ids import new_call_id, new_item_id
from corral.upstream.chat.errors import stream_error
from corral.upstream.chat.output import (
    arguments_of,
    chat_usage,
    choice_logprobs,
    finish_status,
    function_call_item,
    message_item,
    output_text_part,
    reasoning_item,
    reasoning_of,
    refusal_part,
    text_of,
)
from corral.upstream.turn import TurnResult

Events = list[dict[str, Any]]


class _Reasoning:
    __slots__ = ("chunks", "id", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = new_item_id("reasoning")
        self.chunks: list[str] = []


class _Message:
    __slots__ = ("chunks", "id", "index", "kind", "logprobs", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = new_item_id("message")
        self.parts: list[dict[str, Any]] = []
        self.kind: str | None = None  # the open part's type
        self.chunks: list[str] = []
        self.logprobs: list[dict[str, Any]] = []


class _Call:
    __slots__ = ("call_id", "chunks", "id", "index", "name")

    def __init__(self) -> None:
        self.index: int | None = None  # set when output_item.added goes out
        self.id = ""
        self.call_id: str | None = None
        self.name = ""
        self.chunks: list[str] = []


class ChatStreamTranslator:
    """Feed it every parsed chunk (`feed`), then call `finish()` once the upstream is done."""

    def __init__(self) -> None:
        self.finished = False  # a finish_reason was seen
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self._next_index = 0
        self._done: dict[int, dict[str, Any]] = {}
        self._reasoning: _Reasoning | None = None
        self._message: _Message | None = None
        self._calls: dict[Any, _Call] = {}
        self._last_call: Any = None
        self._result: TurnResult | None = None

    def feed(self, chunk: dict[str, Any]) -> Events:
        """The events for one chunk. Raises `ChatStreamError` for a chunk that reports an error."""
        if "error" in chunk or chunk.get("object") == "error":
            error = stream_error(chunk)
            if error is not None:
                raise error
        if chunk.get("model"):
            self.model = chunk["model"]
        if chunk.get("usage"):
            self.usage = chat_usage(chunk["usage"])
        events: Events = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta:
                self._delta(delta, choice, events)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.finished = True
        return events

    def _delta(self, delta: dict[str, Any], choice: dict[str, Any], events: Events) -> None:
        thinking = reasoning_of(delta)
        if thinking:
            self._reasoning_delta(thinking, events)
        content = delta.get("content")
        if content:
            text = content if isinstance(content, str) else text_of(content)
            if text:
                self._message_delta("output_text", text, choice_logprobs(choice), events)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._message_delta("refusal", refusal, None, events)
        calls = delta.get("tool_calls")
        legacy = delta.get("function_call")
        if calls or legacy:
            self._close_reasoning("completed", events)
            self._close_message("completed", events)
            for call in calls or [{"index": "function_call", "function": legacy}]:
                self._call_delta(call, events)

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    # reasoning

    def _reasoning_delta(self, text: str, events: Events) -> None:
        self._close_message("completed", events)
        opened = self._reasoning
        if opened is None:
            opened = self._reasoning = _Reasoning(self._take_index())
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": opened.index,
                    "item": {
                        "type": "reasoning",
                        "id": opened.id,
                        "summary": [],
                        "content": [],
                        "status": "in_progress",
                    },
                }
            )
            events.append(
                {
                    "type": "response.content_part.added",
                    "item_id": opened.id,
                    "output_index": opened.index,
                    "content_index": 0,
                    "part": {"type": "reasoning_text", "text": ""},
                }
            )
        opened.chunks.append(text)
        events.append(
            {
                "type": "response.reasoning_text.delta",
                "item_id": opened.id,
                "output_index": opened.index,
                "content_index": 0,
                "delta": text,
            }
        )

    def _close_reasoning(self, status: str, events: Events) -> None:
        opened, self._reasoning = self._reasoning, None
        if opened is None:
            return
        text = "".join(opened.chunks)
        item = reasoning_item(text, status, opened.id)
        common = {"item_id": opened.id, "output_index": opened.index, "content_index": 0}
        events.append({"type": "response.reasoning_text.done", **common, "text": text})
        events.append(
            {"type": "response.content_part.done", **common, "part": {"type": "reasoning_text", "text": text}}
        )
        events.append({"type": "response.output_item.done", "output_index": opened.index, "item": item})
        self._done[opened.index] = item

    # message

    def _message_delta(self, kind: str, text: str, logprobs: Events | None, events: Events) -> None:
        self._close_reasoning("completed", events)
        message = self._message
        if message is None:
            message = self._message = _Message(self._take_index())
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": message.index,
                    "item": message_item([], "in_progress", message.id),
                }
            )
        if message.kind != kind:
            self._close_part(message, events)
            message.kind = kind
            events.append(
                {
                    "type": "response.content_part.added",
                    "item_id": message.id,
                    "output_index": message.index,
                    "content_index": len(message.parts),
                    "part": output_text_part("") if kind == "output_text" else refusal_part(""),
                }
            )
        message.chunks.append(text)
        common = {"item_id": message.id, "output_index": message.index, "content_index": len(message.parts)}
        if kind == "output_text":
            if logprobs:
                message.logprobs.extend(logprobs)
            events.append(
                {"type": "response.output_text.delta", **common, "delta": text, "logprobs": logprobs or []}
            )
        else:
            events.append({"type": "response.refusal.delta", **common, "delta": text})

    def _close_part(self, message: _Message, events: Events) -> None:
        if message.kind is None:
            return
        text = "".join(message.chunks)
        common = {"item_id": message.id, "output_index": message.index, "content_index": len(message.parts)}
        if message.kind == "output_text":
            part = output_text_part(text, message.logprobs)
            events.append(
                {"type": "response.output_text.done", **common, "text": text, "logprobs": part["logprobs"]}
            )
        else:
            part = refusal_part(text)
            events.append({"type": "response.refusal.done", **common, "refusal": text})
        # A copy: the engine adds annotations to the event's part and to the item's separately.
        events.append({"type": "response.content_part.done", **common, "part": dict(part)})
        message.parts.append(part)
        message.kind = None
        message.chunks = []
        message.logprobs = []

    def _close_message(self, status: str, events: Events) -> None:
        message, self._message = self._message, None
        if message is None:
            return
        self._close_part(message, events)
        item = message_item(message.parts, status, message.id)
        events.append({"type": "response.output_item.done", "output_index": message.index, "item": item})
        self._done[message.index] = item

    # tool calls

    def _call_key(self, call: dict[str, Any]) -> Any:
        index = call.get("index")
        if index is not None:
            return index
        # No index (a few servers send whole calls): match by id, else a named fragment starts a call.
        call_id = call.get("id")
        if call_id:
            for key, state in self._calls.items():
                if state.call_id == call_id:
                    return key
            return ("id", call_id)
        if (call.get("function") or {}).get("name") or self._last_call is None:
            return ("call", len(self._calls))
        return self._last_call

    def _call_delta(self, call: dict[str, Any], events: Events) -> None:
        key = self._call_key(call)
        self._last_call = key
        state = self._calls.get(key)
        if state is None:
            state = self._calls[key] = _Call()
        function = call.get("function") or {}
        if state.index is None:
            if call.get("id") and not state.call_id:
                state.call_id = call["id"]
            if function.get("name"):
                state.name = function["name"]
        fragment = arguments_of(function.get("arguments"))
        if fragment:
            state.chunks.append(fragment)
        if state.index is None:
            if state.name:
                self._add_call(state, events)
        elif fragment:
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": state.id,
                    "output_index": state.index,
                    "delta": fragment,
                }
            )

    def _add_call(self, state: _Call, events: Events) -> None:
        state.index = self._take_index()
        state.id = new_item_id("function_call")
        state.call_id = state.call_id or new_call_id()
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": state.index,
                "item": function_call_item(state.call_id, state.name, "", "in_progress", state.id),
            }
        )
        if state.chunks:
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": state.id,
                    "output_index": state.index,
                    "delta": "".join(state.chunks),
                }
            )

    def _close_call(self, state: _Call, status: str, events: Events) -> None:
        if state.index is None:
            self._add_call(state, events)
        assert state.index is not None
        arguments = "".join(state.chunks)
        if not arguments:  # a call with no arguments still gets valid JSON
            arguments = "{}"
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": state.id,
                    "output_index": state.index,
                    "delta": arguments,
                }
            )
        item = function_call_item(state.call_id, state.name, arguments, status, state.id)
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "item_id": state.id,
                "output_index": state.index,
                "name": state.name,
                "arguments": arguments,
            }
        )
        events.append({"type": "response.output_item.done", "output_index": state.index, "item": item})
        self._done[state.index] = item

    # end

    def finish(self) -> tuple[Events, TurnResult]:
        """Close what is still open (in output_index order) and return the turn's result."""
        if self._result is not None:
            return [], self._result
        status, details = finish_status(self.finish_reason)
        events: Events = []
        unnumbered = 1 << 62  # calls still waiting for a name close last, in the order they began
        still_open: list[_Reasoning | _Message | _Call] = [
            *(opened for opened in (self._reasoning, self._message) if opened is not None),
            *self._calls.values(),
        ]
        still_open.sort(key=lambda opened: unnumbered if opened.index is None else opened.index)
        for opened in still_open:
            if isinstance(opened, _Reasoning):
                self._close_reasoning(status, events)
            elif isinstance(opened, _Message):
                self._close_message(status, events)
            else:
                self._close_call(opened, status, events)
        self._calls.clear()
        self._result = TurnResult(
            output=[self._done[index] for index in sorted(self._done)],
            usage=self.usage,
            status=status,
            incomplete_details=details,
            model=self.model,
        )
        return events, self._result
