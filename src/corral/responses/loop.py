"""Stage 6: the tool loop. Call the model; execute the calls that server-side tools own; call again.

Streaming relays the upstream's item events as they arrive, renumbered into this response's
output; calls owned by a server-side tool are held back and replaced by that tool's own items and
events once the model turn is over.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from corral.protocol.vocabulary import EventType, ItemType
from corral.responses.builder import ResponseBuilder
from corral.responses.context import RequestContext
from corral.responses.execution import build_execution_request
from corral.tools.base import ServerTool, ToolCall, ToolOutcome
from corral.upstream.adapter import event_batches
from corral.upstream.http import on_accepted
from corral.upstream.turn import TurnResult

log = logging.getLogger(__name__)

_CLIENT_CALLS = frozenset(
    (ItemType.FUNCTION_CALL, ItemType.SHELL_CALL, ItemType.LOCAL_SHELL_CALL, ItemType.CUSTOM_TOOL_CALL)
)


class LoopLimits:
    def __init__(self, requested: int | None, gateway_cap: int) -> None:
        self.limit = min(requested, gateway_cap) if requested else gateway_cap
        self.used = 0


def _owner(ctx: RequestContext, item: dict[str, Any]) -> ServerTool | None:
    if item.get("type") != ItemType.FUNCTION_CALL:
        return None
    name = item.get("name", "")
    for tool in ctx.server_tools:
        if tool.owns(name):
            return tool
    return None


class Annotator:
    """Citations for the model's text (e.g. `container_file_citation`), from the tools that offer them."""

    def __init__(self, tools: list[ServerTool]) -> None:
        self.hooks = [hook for tool in tools if (hook := getattr(tool, "annotations", None))]
        self.pending: dict[tuple[int, int], list[dict[str, Any]]] = {}

    async def find(self, text: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for hook in self.hooks:
            found.extend(await hook(text))
        return found

    async def annotate_items(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            if item.get("type") != ItemType.MESSAGE:
                continue
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    existing = part.get("annotations") or []
                    found = await self.find(part.get("text", ""))
                    part["annotations"] = [*existing, *(a for a in found if a not in existing)]

    async def relay(self, event: dict[str, Any], response: ResponseBuilder) -> None:
        """Announce annotations before `output_text.done`, and carry them in the done events."""
        kind = event["type"]
        if kind == EventType.OUTPUT_TEXT_DONE:
            key = (event["output_index"], event["content_index"])
            found = await self.find(event.get("text", ""))
            self.pending[key] = found
            for number, annotation in enumerate(found):
                await response.emit(
                    {
                        "type": EventType.OUTPUT_TEXT_ANNOTATION_ADDED,
                        "item_id": event.get("item_id"),
                        "output_index": key[0],
                        "content_index": key[1],
                        "annotation_index": number,
                        "annotation": annotation,
                    }
                )
        elif kind == EventType.CONTENT_PART_DONE:
            pending = self.pending.get((event["output_index"], event["content_index"]))
            if pending:
                event["part"]["annotations"] = [*event["part"].get("annotations", []), *pending]
        elif kind == EventType.OUTPUT_ITEM_DONE and event["item"].get("type") == ItemType.MESSAGE:
            for number, part in enumerate(event["item"].get("content") or []):
                pending = self.pending.get((event["output_index"], number))
                if pending:
                    part["annotations"] = [*part.get("annotations", []), *pending]


async def model_turn(ctx: RequestContext, request: dict[str, Any], annotator: Annotator | None) -> TurnResult:
    assert ctx.route is not None
    adapter = ctx.route.adapter
    response = ctx.response
    if not response.streaming:
        result = await adapter.create(request, ctx.client_key)
        if annotator:
            await annotator.annotate_items(result.output)
        return result
    stream = adapter.stream(request, ctx.client_key)
    accepted = on_accepted.set(response.start)
    try:
        await stream.open()
    finally:
        on_accepted.reset(accepted)
    base = len(response.output)
    held: list[int] = []
    try:
        async for batch in event_batches(stream):
            relayed: list[dict[str, Any]] = []
            for event in batch:
                index = event.get("output_index")
                if index is not None:
                    if held or ctx.server_tools:
                        if event["type"] == EventType.OUTPUT_ITEM_ADDED and _owner(ctx, event["item"]):
                            held.append(index)
                            continue
                        if index in held:
                            continue
                        index -= sum(1 for position in held if position < index)
                    event["output_index"] = base + index
                    if annotator:
                        # The annotator emits events of its own before this one: what came first goes first.
                        if relayed:
                            await response.emit_many(relayed)
                            relayed = []
                        await annotator.relay(event, response)
                relayed.append(event)
            if relayed:
                await response.emit_many(relayed)
    finally:
        await stream.aclose()
    assert stream.result is not None
    if annotator:
        await annotator.annotate_items(stream.result.output)
    return stream.result


async def _execute(tool: ServerTool, call: ToolCall, response: ResponseBuilder) -> ToolOutcome:
    try:
        return await tool.execute(call, response)
    except Exception as exc:
        log.exception("tool execution failed: %s", call.name)
        return ToolOutcome(model_output=f"Error: the tool failed: {exc}")


async def run_tool_loop(
    ctx: RequestContext, *, gateway_cap: int, between_turns: Callable[[], Awaitable[None]] | None = None
) -> TurnResult | None:
    """Run model turns until a final answer; returns the last turn (None if none ran).
    `between_turns` runs once the tools' outputs are in, before the next model call."""
    response = ctx.response
    for tool in ctx.server_tools:
        ctx.loop_items.extend(await tool.prepare(response))
    limits = LoopLimits(ctx.body.max_tool_calls, gateway_cap)
    annotator = Annotator(ctx.server_tools)
    last: TurnResult | None = None
    while True:
        last = await model_turn(ctx, build_execution_request(ctx), annotator if annotator.hooks else None)
        response.add_usage(last.usage)
        owners = [(item, _owner(ctx, item)) for item in last.output]
        owned = [(item, tool) for item, tool in owners if tool is not None]
        response.extend_output([item for item, tool in owners if tool is None])
        ctx.loop_items.extend(last.output)
        if last.status != "completed" or not owned:
            return last
        runnable = owned[: max(0, limits.limit - limits.used)]
        limits.used += len(runnable)
        outcomes = await asyncio.gather(
            *(
                _execute(tool, ToolCall(item["call_id"], item["name"], item.get("arguments") or "", item), response)
                for item, tool in runnable
            )
        )
        for (item, _tool), outcome in zip(runnable, outcomes, strict=True):
            ctx.loop_items.append(
                {"type": ItemType.FUNCTION_CALL_OUTPUT, "call_id": item["call_id"], "output": outcome.model_output}
            )
        if len(runnable) < len(owned):
            response.stop_incomplete({"reason": "max_tool_calls"})
            return last
        client_calls = any(item.get("type") in _CLIENT_CALLS and tool is None for item, tool in owners)
        if client_calls or any(outcome.stop for outcome in outcomes):
            return last
        if between_turns is not None:
            await between_turns()
