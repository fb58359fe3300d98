"""`corral.tools.mcp_client` against the real demo MCP server: streamable HTTP, SSE and stdio."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from corral.tools.mcp import PlannedCall, execute_calls, parse_mcp_tool
from corral.tools.mcp_client import (
    McpServerSpec,
    McpUnavailable,
    ToolListCache,
    call_tool,
    list_tools,
    safe_url,
    tool_cache,
)
from tests.mcp_servers.fixtures import DEMO_TOKEN, server_stats
from tests.support.servers import free_port

DEMO_TOOLS = {"add", "echo", "fail", "sleep", "whoami", "read_only_info", "structured", "list_calls"}
HANG_TIMEOUT_S = 0.3


@pytest.fixture(params=["streamable_http", "sse", "stdio"])
def any_spec(
    request: pytest.FixtureRequest,
    demo_mcp_url: str,
    demo_mcp_sse_url: str,
    demo_mcp_stdio: tuple[str, list[str]],
) -> McpServerSpec:
    if request.param == "stdio":
        command, args = demo_mcp_stdio
        return McpServerSpec("demo", "stdio", command=command, args=args, timeout_s=20)
    url = demo_mcp_url if request.param == "streamable_http" else demo_mcp_sse_url
    return McpServerSpec("demo", request.param, url=url, timeout_s=10)


def http_spec(url: str, **kwargs: object) -> McpServerSpec:
    return McpServerSpec("demo", "sse" if url.endswith("/sse") else "streamable_http", url=url, **kwargs)  # type: ignore[arg-type]


# --- every transport ---------------------------------------------------------------------------


async def test_list_tools(any_spec: McpServerSpec) -> None:
    tools = await list_tools(any_spec, use_cache=False)
    by_name = {tool["name"]: tool for tool in tools}
    assert set(by_name) >= DEMO_TOOLS
    add = by_name["add"]
    assert set(add) == {"name", "description", "input_schema", "annotations"}
    assert add["description"] == "Add two integers."
    assert add["input_schema"]["type"] == "object" and set(add["input_schema"]["properties"]) == {"a", "b"}
    assert by_name["read_only_info"]["annotations"] == {"readOnlyHint": True}


async def test_calls_succeed_fail_and_time_out(any_spec: McpServerSpec) -> None:
    calls = [
        PlannedCall(any_spec, "add", '{"a": 2, "b": 3}'),
        PlannedCall(any_spec, "structured", "{}"),
        PlannedCall(any_spec, "fail", {"message": "boom"}),
        PlannedCall(any_spec, "sleep", '{"seconds": 30}', timeout_s=HANG_TIMEOUT_S),
    ]
    added, structured, failed, hung = await execute_calls(calls)
    assert added.output == "5" and added.error is None and added.ok
    assert structured.output == '{"answer":42}'
    assert failed.output is None and failed.error is not None
    assert failed.error["type"] == "mcp_tool_execution_error"
    assert failed.error["content"][0]["type"] == "text" and "boom" in failed.error["content"][0]["text"]
    assert hung.output is None
    assert hung.error == {
        "type": "mcp_protocol_error",
        "code": -32001,
        "message": f"tools/call 'sleep' timed out after {HANG_TIMEOUT_S:g} s",
    }


# --- HTTP transports: headers and authorization --------------------------------------------------


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_declared_headers_and_authorization_reach_the_server(
    transport: str, demo_mcp_url: str, demo_mcp_sse_url: str
) -> None:
    url = demo_mcp_url if transport == "streamable_http" else demo_mcp_sse_url
    decl = parse_mcp_tool(
        {
            "type": "mcp",
            "server_label": "demo",
            "server_url": url,
            "authorization": "tok-123",
            "headers": {"X-Demo": "custom-value"},
        },
        0,
    )
    assert decl.spec.transport == transport
    outcome = await call_tool(decl.spec, "whoami", {}, timeout_s=10)
    assert outcome.output == "authorization=Bearer tok-123 x-demo=custom-value"


async def test_server_requiring_a_token(demo_mcp_auth_url: str) -> None:
    anonymous = http_spec(demo_mcp_auth_url, timeout_s=5)
    with pytest.raises(McpUnavailable) as caught:
        await list_tools(anonymous)
    assert caught.value.error["type"] == "http_error" and caught.value.error["code"] == 401
    assert "'demo'" in caught.value.message and "401" in caught.value.message
    outcome = await call_tool(anonymous, "add", {"a": 1, "b": 1}, timeout_s=5)
    assert outcome.error is not None and outcome.error["type"] == "http_error" and outcome.error["code"] == 401

    decl = {
        "type": "mcp",
        "server_label": "demo",
        "server_url": demo_mcp_auth_url,
        "authorization": DEMO_TOKEN,
    }
    spec = parse_mcp_tool(decl, 0).spec
    assert {tool["name"] for tool in await list_tools(spec)} >= DEMO_TOOLS
    assert (await call_tool(spec, "add", {"a": 1, "b": 1}, timeout_s=5)).output == "2"


# --- the tool-list cache -------------------------------------------------------------------------


async def test_second_listing_comes_from_the_cache(demo_mcp_url: str) -> None:
    spec = http_spec(demo_mcp_url, headers={"X-Demo": "a"})
    before = server_stats(demo_mcp_url)["list_tools"]
    first = await list_tools(spec)
    second = await list_tools(spec)
    assert second == first
    assert server_stats(demo_mcp_url)["list_tools"] == before + 1

    # Calls do not list (they use tools/call alone), and the cached list is a copy.
    second[0]["name"] = "mutated"
    assert (await call_tool(spec, "add", {"a": 1, "b": 2}, timeout_s=5)).output == "3"
    assert (await list_tools(spec))[0]["name"] != "mutated"
    assert server_stats(demo_mcp_url)["list_tools"] == before + 1

    # Other credentials, or use_cache=False, reach the server.
    await list_tools(http_spec(demo_mcp_url, headers={"X-Demo": "b"}))
    await list_tools(spec, use_cache=False)
    assert server_stats(demo_mcp_url)["list_tools"] == before + 3
    assert len(tool_cache) == 2


async def test_cache_entries_expire(demo_mcp_url: str) -> None:
    spec = http_spec(demo_mcp_url)
    expired = ToolListCache(ttl_s=0)
    before = server_stats(demo_mcp_url)["list_tools"]
    await list_tools(spec, cache=expired)
    await list_tools(spec, cache=expired)
    assert server_stats(demo_mcp_url)["list_tools"] == before + 2


def test_cache_keys_hold_no_secret() -> None:
    spec = McpServerSpec("x", "streamable_http", url="https://mcp.example/mcp", headers={"Authorization": "Bearer s3"})
    other = McpServerSpec("y", "streamable_http", url="https://mcp.example/mcp", headers={"authorization": "Bearer s4"})
    assert spec.cache_key()[:2] == ("streamable_http", "https://mcp.example/mcp")
    assert spec.cache_key() != other.cache_key()
    assert "s3" not in repr(spec.cache_key()) and "s3" not in repr(spec)


# --- failures ------------------------------------------------------------------------------------


async def test_unreachable_server() -> None:
    for transport, path in (("streamable_http", "/mcp"), ("sse", "/sse")):
        spec = McpServerSpec("gone", transport, url=f"http://127.0.0.1:{free_port()}{path}", timeout_s=5)  # type: ignore[arg-type]
        with pytest.raises(McpUnavailable) as caught:
            await list_tools(spec)
        assert caught.value.error["type"] == "http_error" and caught.value.error["code"] == 502
        assert "unreachable" in caught.value.message and "'gone'" in caught.value.message
        outcome = await call_tool(spec, "add", {"a": 1, "b": 2}, timeout_s=5)
        assert outcome.error is not None and outcome.error["code"] == 502 and outcome.output is None


async def test_wrong_path_is_an_http_error(demo_mcp_url: str) -> None:
    outcome = await call_tool(http_spec(demo_mcp_url.replace("/mcp", "/nowhere")), "add", {}, timeout_s=5)
    assert outcome.error is not None and outcome.error["type"] == "http_error" and outcome.error["code"] == 404


async def test_stdio_server_that_cannot_start() -> None:
    spec = McpServerSpec("broken", "stdio", command="/nonexistent/mcp-server", timeout_s=5)
    with pytest.raises(McpUnavailable) as caught:
        await list_tools(spec)
    assert caught.value.error["type"] == "mcp_protocol_error" and caught.value.error["code"] == -32000
    outcome = await call_tool(spec, "add", {}, timeout_s=5)
    assert outcome.error is not None and "could not be started" in outcome.error["message"]


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
async def test_server_that_never_answers_times_out(silent_server: str, path: str) -> None:
    spec = http_spec(silent_server + path, timeout_s=HANG_TIMEOUT_S)
    with pytest.raises(McpUnavailable) as caught:
        await list_tools(spec)
    assert caught.value.error["code"] == -32001 and "timed out" in caught.value.message
    outcome = await call_tool(spec, "add", {}, timeout_s=HANG_TIMEOUT_S)
    assert outcome.error is not None and outcome.error["code"] == -32001


async def test_concurrent_calls_where_some_fail(demo_mcp_url: str) -> None:
    spec = http_spec(demo_mcp_url)
    gone = McpServerSpec("gone", "streamable_http", url=f"http://127.0.0.1:{free_port()}/mcp", timeout_s=5)
    calls = [
        PlannedCall(spec, "add", '{"a": 1, "b": 1}'),
        PlannedCall(spec, "fail", '{"message": "first"}'),
        PlannedCall(gone, "add", '{"a": 1, "b": 1}'),
        PlannedCall(spec, "sleep", '{"seconds": 30}', timeout_s=HANG_TIMEOUT_S),
        PlannedCall(spec, "echo", "not json"),
        PlannedCall(spec, "echo", '["an", "array"]'),
        PlannedCall(spec, "echo", '{"text": "still here"}'),
    ]
    outcomes = await execute_calls(calls)
    assert [outcome.ok for outcome in outcomes] == [True, False, False, False, False, False, True]
    assert outcomes[0].output == "2" and outcomes[-1].output == "still here"
    assert [o.error["type"] for o in outcomes[1:6] if o.error] == [
        "mcp_tool_execution_error",
        "http_error",
        "mcp_protocol_error",
        "mcp_protocol_error",
        "mcp_protocol_error",
    ]
    assert outcomes[4].error is not None and outcomes[4].error["code"] == -32602


async def test_an_outside_cancellation_is_not_swallowed(demo_mcp_url: str) -> None:
    spec = http_spec(demo_mcp_url)
    task = asyncio.create_task(call_tool(spec, "sleep", {"seconds": 30}, timeout_s=30))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The server and this loop are still fine afterwards.
    assert (await call_tool(spec, "add", {"a": 2, "b": 2}, timeout_s=5)).output == "4"


async def test_secrets_never_reach_the_logs(demo_mcp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    token = "sk-very-secret-token-4242"
    header_secret = "header-secret-9191"
    caplog.set_level(logging.DEBUG)
    tool = {
        "type": "mcp",
        "server_label": "demo",
        "server_url": demo_mcp_url,
        "authorization": token,
        "headers": {"X-Demo": header_secret},
    }
    spec = parse_mcp_tool(tool, 0, timeout_s=5).spec
    whoami = await call_tool(spec, "whoami", {}, timeout_s=5)
    assert whoami.output == f"authorization=Bearer {token} x-demo={header_secret}"
    caplog.clear()  # the SDK logs results at DEBUG, and whoami's result is the secret itself
    await list_tools(spec)
    outcomes = await execute_calls(
        [
            PlannedCall(spec, "fail", '{"message": "x"}'),
            PlannedCall(spec, "sleep", '{"seconds": 30}', timeout_s=0.2),
        ]
    )
    gone = parse_mcp_tool({**tool, "server_url": f"http://127.0.0.1:{free_port()}/mcp"}, 0)
    with pytest.raises(McpUnavailable) as caught:
        await list_tools(gone.spec)
    text = caplog.text + repr(spec) + repr(gone) + str(caught.value) + repr([o.error for o in outcomes])
    assert caplog.records, "expected some log records to check"
    for secret in (token, header_secret):
        assert secret not in text
    assert safe_url("https://user:pw@h.example:8443/p/sse?k=v#f") == "https://h.example:8443/p/sse"
