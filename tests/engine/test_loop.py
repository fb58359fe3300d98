"""The tool loop with a scripted upstream and a fake server-side tool: no HTTP, no database."""

from corral.responses.loop import run_tool_loop
from corral.upstream.turn import TurnResult
from tests.engine.fakes import Adder, ScriptedAdapter, context, function_call, message, usage


async def test_a_server_tool_call_is_executed_and_the_model_called_again() -> None:
    adapter = ScriptedAdapter(
        TurnResult(output=[function_call("add", "c1")], usage=usage(1)),
        TurnResult(output=[message("3")], usage=usage(2)),
    )
    adder = Adder()
    ctx = context(adapter, tools=[adder])
    last = await run_tool_loop(ctx, gateway_cap=10)
    assert last is not None and last.output == [message("3")]
    assert [call.call_id for call in adder.calls] == ["c1"]
    assert [item["type"] for item in ctx.response.output] == ["mcp_call", "message"]
    assert ctx.response.object["usage"]["total_tokens"] == 6
    second = adapter.requests[1]["input"]
    assert second[-2:] == [function_call("add", "c1"), {"type": "function_call_output", "call_id": "c1", "output": "3"}]
    assert adapter.requests[0]["model"] == "upstream-m"


async def test_a_client_function_call_ends_the_loop_for_the_client() -> None:
    adapter = ScriptedAdapter(TurnResult(output=[function_call("lookup", "c1")]))
    ctx = context(adapter, tools=[Adder()])
    last = await run_tool_loop(ctx, gateway_cap=10)
    assert last is not None and ctx.response.output == [function_call("lookup", "c1")]
    assert len(adapter.requests) == 1


async def test_max_tool_calls_stops_the_response_incomplete() -> None:
    adapter = ScriptedAdapter(TurnResult(output=[function_call("add", "c1"), function_call("add", "c2")]))
    adder = Adder()
    ctx = context(adapter, tools=[adder], max_tool_calls=1)
    await run_tool_loop(ctx, gateway_cap=10)
    assert [call.call_id for call in adder.calls] == ["c1"]
    assert ctx.response.status == "incomplete"
    assert ctx.response.object["incomplete_details"] == {"reason": "max_tool_calls"}


async def test_a_failed_turn_is_returned_for_the_service_to_settle() -> None:
    adapter = ScriptedAdapter(TurnResult(status="failed", error={"code": "server_error", "message": "x"}))
    ctx = context(adapter)
    last = await run_tool_loop(ctx, gateway_cap=10)
    assert last is not None and last.status == "failed" and ctx.response.status == "in_progress"
    ctx.response.settle(last)
    assert ctx.response.status == "failed"
