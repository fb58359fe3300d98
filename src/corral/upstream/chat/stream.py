"""Chat completion chunks as OpenAI's Responses stream events.

Item-level events only (the engine adds the response envelope and sequence numbers), with
`output_index` counted from 0 in the order items are added. Several tool calls may stream
interleaved by their chat `index`; each keeps its own output_index. Plain dicts throughout: this
runs once per chunk.
"""

from typing import Any

from corral.protocol.ids import new_call_id, new_item_id
from corral.upstream.chat.response import chat_usage, finish_status
from corral.upstream.errors import UpstreamStreamError
from corral.upstream.turn import TurnResult


class _Open:
    __slots__ = ("index", "item", "text")

    def __init__(self, index: int, item: dict[str, Any]) -> None:
        self.index = index
        self.item = item
        self.text: list[str] = []


class ChatStreamTranslator:
    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.next_index = 0
        self.reasoning: _Open | None = None
        self.message: _Open | None = None
        self.calls: dict[int, _Open] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.finished = False

    def _add(self, item: dict[str, Any]) -> _Open:
        opened = _Open(self.next_index, item)
        self.items[self.next_index] = item
        self.next_index += 1
        return opened

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if chunk.get("error"):
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            raise UpstreamStreamError(
                str(error.get("message") or "upstream error"), error.get("code") or "server_error"
            )
        events: list[dict[str, Any]] = []
        if chunk.get("model"):
            self.model = chunk["model"]
        if chunk.get("usage"):
            self.usage = chat_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if thinking:
                events += self._reasoning_delta(thinking)
            text = delta.get("content") or delta.get("refusal")
            if text:
                events += self._close_reasoning("completed")
                events += self._text_delta(text)
            for call in delta.get("tool_calls") or ():
                events += self._close_reasoning("completed")
                events += self._close_message("completed")
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.finished = True
        return events

    def _reasoning_delta(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.reasoning is None:
            item = {
                "type": "reasoning",
                "id": new_item_id("reasoning"),
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            self.reasoning = self._add(item)
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": self.reasoning.index,
                    "item": dict(item),
                }
            )
        self.reasoning.text.append(text)
        events.append(
            {
                "type": "response.reasoning_text.delta",
                "item_id": self.reasoning.item["id"],
                "output_index": self.reasoning.index,
                "content_index": 0,
                "delta": text,
            }
        )
        return events

    def _close_reasoning(self, status: str) -> list[dict[str, Any]]:
        if self.reasoning is None:
            return []
        opened, self.reasoning = self.reasoning, None
        text = "".join(opened.text)
        opened.item.update(content=[{"type": "reasoning_text", "text": text}], status=status)
        return [
            {
                "type": "response.reasoning_text.done",
                "item_id": opened.item["id"],
                "output_index": opened.index,
                "content_index": 0,
                "text": text,
            },
            {"type": "response.output_item.done", "output_index": opened.index, "item": opened.item},
        ]

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.message is None:
            item = {
                "type": "message",
                "id": new_item_id("message"),
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            self.message = self._add(item)
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": self.message.index,
                    "item": dict(item, content=[]),
                }
            )
            events.append(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": self.message.index,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                }
            )
        self.message.text.append(text)
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": self.message.item["id"],
                "output_index": self.message.index,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }
        )
        return events

    def _close_message(self, status: str) -> list[dict[str, Any]]:
        if self.message is None:
            return []
        opened, self.message = self.message, None
        text = "".join(opened.text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        opened.item.update(content=[part], status=status)
        common = {"item_id": opened.item["id"], "output_index": opened.index, "content_index": 0}
        return [
            {"type": "response.output_text.done", **common, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **common, "part": dict(part)},
            {"type": "response.output_item.done", "output_index": opened.index, "item": opened.item},
        ]

    def _call_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        opened = self.calls.get(position)
        if opened is None:
            item = {
                "type": "function_call",
                "id": new_item_id("function_call"),
                "call_id": call.get("id") or new_call_id(),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            opened = self._add(item)
            self.calls[position] = opened
            events.append({"type": "response.output_item.added", "output_index": opened.index, "item": dict(item)})
        elif function.get("name") and not opened.item["name"]:
            opened.item["name"] = function["name"]
        fragment = function.get("arguments") or ""
        if fragment:
            opened.text.append(fragment)
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": opened.item["id"],
                    "output_index": opened.index,
                    "delta": fragment,
                }
            )
        return events

    def _close_calls(self, status: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for opened in sorted(self.calls.values(), key=lambda o: o.index):
            arguments = "".join(opened.text)
            opened.item.update(arguments=arguments, status=status)
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": opened.item["id"],
                    "output_index": opened.index,
                    "name": opened.item["name"],
                    "arguments": arguments,
                }
            )
            events.append({"type": "response.output_item.done", "output_index": opened.index, "item": opened.item})
        self.calls.clear()
        return events

    def finish(self) -> tuple[list[dict[str, Any]], TurnResult]:
        status, details = finish_status(self.finish_reason)
        events = self._close_reasoning(status) + self._close_message(status) + self._close_calls(status)
        output = [self.items[index] for index in sorted(self.items)]
        return events, TurnResult(
            output=output, usage=self.usage, status=status, incomplete_details=details, model=self.model
        )
