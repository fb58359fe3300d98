"""`McpTool`, the tool loop's adapter: listings, calls, approvals and their events."""

from typing import Any

from corral.protocol.events import Emitter
from corral.responses.builder import ResponseBuilder
from corral.tools.base import ToolCall
from corral.tools.mcp import McpTool, list_tools_item, parse_mcp_tools
from tests.mcp_servers.fixtures import server_stats
from tests.support.servers import free_port


class Recorder:
    def __init__(self) -> None:
        self.response: dict[str, Any] = {"id": "resp_test", "status": "in_progress", "output": []}
        self.events: list[dict[str, Any]] = []
        self.emitter = ResponseBuilder(self.response, Emitter(recorder=self.record))

    async def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def kinds(self, index: int) -> list[str]:
        return [event["type"] for event in self.events if event.get("output_index") == index]


def call(name: str, arguments: str = "{}") -> ToolCall:
    return ToolCall(call_id="call_1", name=name, arguments=arguments, item={})


async def test_lists_concurrently_and_reports_a_dead_server(demo_mcp_url: str) -> None:
    tools = [
        {"type": "mcp", "server_label": "demo", "server_url": demo_mcp_url, "require_approval": "never"},
        {"type": "mcp", "server_label": "dead", "server_url": f"http://127.0.0.1:{free_port()}/mcp"},
    ]
    decls = parse_mcp_tools(tools, timeout_s=5)
    recorder = Recorder()
    tool = McpTool(decls, [], [], reserved_names={"echo"})
    assert await tool.prepare(recorder.emitter) == []
    listing, dead = recorder.response["output"]
    assert listing["type"] == "mcp_list_tools" and {t["name"] for t in listing["tools"]} >= {"add", "echo"}
    assert dead["tools"] == [] and "unreachable" in dead["error"]
    assert recorder.kinds(0) == [
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
    ]
    assert recorder.kinds(1)[2] == "response.mcp_list_tools.failed"
    names = {function["name"] for function in tool.function_tools()}
    assert "add" in names and "demo__echo" in names and "echo" not in names
    assert tool.owns("add") and not tool.owns("nope")

    outcome = await tool.execute(call("add", '{"a": 4, "b": 5}'), recorder.emitter)
    assert not outcome.stop and outcome.model_output == "9"
    (item,) = outcome.items
    assert item["type"] == "mcp_call" and item["status"] == "completed" and item["output"] == "9"
    assert recorder.kinds(2) == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    failed = await tool.execute(call("demo__echo", "{"), recorder.emitter)
    assert failed.items[0]["status"] == "failed" and failed.model_output.startswith("Error: ")


async def test_history_listing_is_reused_and_approvals_resume(demo_mcp_url: str) -> None:
    decls = parse_mcp_tools([{"type": "mcp", "server_label": "demo", "server_url": demo_mcp_url}], timeout_s=5)
    listed = list_tools_item("demo", [{"name": "add", "description": "Add.", "input_schema": {"type": "object"}}])
    before = server_stats(demo_mcp_url)["list_tools"]

    first = Recorder()
    tool = McpTool(decls, [listed], [])
    await tool.prepare(first.emitter)
    assert first.response["output"] == [] and [f["name"] for f in tool.function_tools()] == ["add"]
    waiting = await tool.execute(call("add", '{"a": 1, "b": 2}'), first.emitter)
    assert waiting.stop
    (request,) = waiting.items
    assert request["type"] == "mcp_approval_request" and request["id"].startswith("mcpr_")

    history = [listed, request]
    approve = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
    second = Recorder()
    resumed = McpTool(decls, history, [approve])
    model_items = await resumed.prepare(second.emitter)
    assert model_items == [
        {"type": "function_call", "call_id": request["id"], "name": "add", "arguments": '{"a": 1, "b": 2}'},
        {"type": "function_call_output", "call_id": request["id"], "output": "3"},
    ]
    (executed,) = second.response["output"]
    assert executed["approval_request_id"] == request["id"] and executed["output"] == "3"

    deny = {**approve, "approve": False, "reason": "no"}
    third = Recorder()
    denied = await McpTool(decls, history, [deny]).prepare(third.emitter)
    assert denied[1]["output"] == "The user denied this tool call. Reason: no"
    assert third.response["output"] == []
    assert server_stats(demo_mcp_url)["list_tools"] == before
