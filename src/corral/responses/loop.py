"""Stage 6: the tool loop. Call the model; execute the calls that server-side tools own; call again.

Streaming relays the upstream's item events as they arrive, renumbered into this response's
output; calls owned by a server-side tool are held back and replaced by that tool's own items and
events once the model turn is over.
"""

import asyncio
import logging
from typing import Any

from corral.protocol.response import add_usage
from corral.responses.context import RequestContext
from corral.responses.events import Emitter
from corral.responses.execution import build_execution_request
from corral.tools.base import ServerTool, ToolCall, ToolOutcome
from corral.upstream.turn import TurnResult

log = logging.getLogger(__name__)

_CLIENT_CALLS = frozenset(("function_call", "shell_call", "local_shell_call", "custom_tool_call"))


class LoopLimits:
    def __init__(self, requested: int | None, gateway_cap: int) -> None:
        self.limit = min(requested, gateway_cap) if requested else gateway_cap
        self.used = 0

    def allow(self) -> bool:
        return self.used < self.limit


def _owner(ctx: RequestContext, item: dict[str, Any]) -> ServerTool | None:
    if item.get("type") != "function_call":
        return None
    name = item.get("name", "")
    for tool in ctx.server_tools:
        if tool.owns(name):
            return tool
    return None


async def model_turn(ctx: RequestContext, request: dict[str, Any], emitter: Emitter) -> TurnResult:
    assert ctx.route is not None
    adapter = ctx.route.adapter
    if not emitter.streaming:
        return await adapter.create(request)
    stream = adapter.stream(request)
    await stream.open()
    base = len(ctx.response["output"])
    held: list[int] = []
    try:
        async for event in stream.events():
            index = event.get("output_index")
            if index is not None:
                if held or ctx.server_tools:
                    if event["type"] == "response.output_item.added" and _owner(ctx, event["item"]):
                        held.append(index)
                        continue
                    if index in held:
                        continue
                    index -= sum(1 for position in held if position < index)
                event["output_index"] = base + index
            await emitter.emit(event)
    finally:
        await stream.aclose()
    assert stream.result is not None
    return stream.result


async def _execute(tool: ServerTool, call: ToolCall, emitter: Emitter) -> ToolOutcome:
    try:
        return await tool.execute(call, emitter)
    except Exception as exc:
        log.exception("tool execution failed: %s", call.name)
        return ToolOutcome(model_output=f"Error: the tool failed: {exc}")


async def run_tool_loop(ctx: RequestContext, emitter: Emitter, *, gateway_cap: int) -> TurnResult | None:
    """Run model turns until a final answer; returns the last turn (None if none ran)."""
    response = ctx.response
    for tool in ctx.server_tools:
        await tool.prepare(emitter)
    limits = LoopLimits(ctx.body.max_tool_calls, gateway_cap)
    last: TurnResult | None = None
    while True:
        last = await model_turn(ctx, build_execution_request(ctx), emitter)
        response["usage"] = add_usage(response.get("usage"), last.usage)
        owned = [(item, tool) for item in last.output if (tool := _owner(ctx, item))]
        response["output"].extend(item for item in last.output if not _owner(ctx, item))
        ctx.loop_items.extend(last.output)
        if last.status != "completed" or not owned:
            return last
        if not limits.allow():
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": "max_tool_calls"}
            return last
        runnable = owned[: limits.limit - limits.used]
        limits.used += len(runnable)
        outcomes = await asyncio.gather(
            *(
                _execute(
                    tool, ToolCall(item["call_id"], item["name"], item.get("arguments") or "", item), emitter
                )
                for item, tool in runnable
            )
        )
        for (item, _tool), outcome in zip(runnable, outcomes, strict=True):
            ctx.loop_items.append(
                {"type": "function_call_output", "call_id": item["call_id"], "output": outcome.model_output}
            )
        if len(runnable) < len(owned):
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": "max_tool_calls"}
            return last
        client_calls = any(
            item.get("type") in _CLIENT_CALLS and not _owner(ctx, item) for item in last.output
        )
        if client_calls or any(outcome.stop for outcome in outcomes):
            return last
