"""Fakes at the engine's boundaries: an upstream adapter that answers from a script, a server-side
tool, and a request context that needs no registry, store or HTTP."""

from types import SimpleNamespace
from typing import Any, cast

from corral.protocol.events import Emitter, OutputWriter
from corral.protocol.request import validate_create_body
from corral.protocol.response import new_response
from corral.responses.builder import ResponseBuilder
from corral.responses.context import RequestContext
from corral.tools.base import ToolCall, ToolOutcome
from corral.upstream.registry import Route
from corral.upstream.turn import TurnResult


def usage(tokens: int) -> dict[str, Any]:
    return {"input_tokens": tokens, "output_tokens": tokens, "total_tokens": 2 * tokens}


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, call_id: str, arguments: str = "{}") -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": arguments}


class ScriptedAdapter:
    """Answers each non-streaming model call with the next scripted turn; keeps the requests."""

    def __init__(self, *turns: TurnResult) -> None:
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []

    async def create(self, request: dict[str, Any], client_key: str | None = None) -> TurnResult:
        self.requests.append(request)
        return self.turns.pop(0)


class Adder:
    """A server-side tool owning the function `add`: it writes an item of its own per call."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def function_tools(self) -> list[dict[str, Any]]:
        return [{"type": "function", "name": "add", "parameters": {"type": "object"}}]

    def owns(self, name: str) -> bool:
        return name == "add"

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        return []

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        self.calls.append(call)
        item = {"type": "mcp_call", "id": f"mcp_{call.call_id}", "name": "add", "status": "completed"}
        index = await emitter.add_item(dict(item, status="in_progress"))
        await emitter.done_item(index, item)
        return ToolOutcome(items=[item], model_output="3")


def context(adapter: ScriptedAdapter, *, tools: list[Any] | None = None, **body: Any) -> RequestContext:
    parsed = validate_create_body({"model": "m", "input": "hi", **body})
    route = SimpleNamespace(
        adapter=adapter,
        upstream_model="upstream-m",
        worker=SimpleNamespace(settings=SimpleNamespace(hosted_tools=False)),
    )
    ctx = RequestContext(
        body=parsed,
        tenant="t",
        headers={},
        response_id="resp_1",
        input_items=[{"type": "message", "role": "user", "content": "hi", "id": "msg_in"}],
        route=cast(Route, route),
        server_tools=list(tools or []),
    )
    ctx.builder = ResponseBuilder(new_response("resp_1", parsed, conversation_id=None))
    return ctx


class Recording:
    """A builder whose events are kept, as a background stream's recorder keeps them."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = response if response is not None else {"id": "resp_1", "status": "in_progress", "output": []}
        self.builder = ResponseBuilder(self.response, Emitter(recorder=self.record))

    async def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]
