"""`corral.tools.mcp`'s pure parts: declarations, filters, function tools, items, history."""

from typing import Any

import pytest

from corral.config import McpServerSettings
from corral.protocol.errors import APIError
from corral.tools.mcp import (
    McpToolDecl,
    approval_request_item,
    approval_responses,
    call_item,
    call_item_in_progress,
    config_server,
    find_approval_request,
    function_name_for,
    function_tools,
    is_allowed,
    list_tools_item,
    listed_labels,
    model_output,
    needs_approval,
    parse_arguments,
    parse_mcp_tool,
    parse_mcp_tools,
    tools_from_history,
    transport_for_url,
)
from corral.tools.mcp_client import McpCallOutcome

URL = "https://mcp.example.com/mcp"


def mcp(**fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "demo", "server_url": URL, **fields}


def tool(name: str, read_only: bool = False, **extra: Any) -> dict[str, Any]:
    annotations = {"readOnlyHint": True} if read_only else None
    return {
        "name": name,
        "description": f"{name}!",
        "input_schema": {"type": "object"},
        "annotations": annotations,
    }


def rejected(decl: Any, index: int = 2, **kwargs: Any) -> APIError:
    with pytest.raises(APIError) as caught:
        parse_mcp_tool(decl, index, **kwargs)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    return caught.value


# --- parsing ----------------------------------------------------------------------------------------


def test_minimal_declaration() -> None:
    decl = parse_mcp_tool(mcp(), 0, timeout_s=12)
    assert decl.label == "demo" and decl.server_url == URL and not decl.configured
    assert decl.spec.transport == "streamable_http" and decl.spec.url == URL and decl.spec.headers == {}
    assert decl.spec.timeout_s == 12 == decl.timeout_s
    assert decl.allowed_tools is None and decl.require_approval.mode == "always"


def test_transport_follows_the_url() -> None:
    assert transport_for_url("http://h/sse") == "sse"
    assert transport_for_url("http://h/a/sse/") == "sse"
    assert transport_for_url("http://h/mcp") == "streamable_http"
    assert transport_for_url("http://h/sse-like?x=/sse") == "streamable_http"
    assert parse_mcp_tool(mcp(server_url="http://127.0.0.1:9/sse"), 0).spec.transport == "sse"


def test_authorization_and_headers() -> None:
    decl = parse_mcp_tool(mcp(headers={"X-Demo": "v", "authorization": "old"}, authorization="tok"), 0)
    assert decl.spec.headers == {"X-Demo": "v", "Authorization": "Bearer tok"}
    assert parse_mcp_tool(mcp(authorization="Bearer tok"), 0).spec.headers == {"Authorization": "Bearer tok"}
    assert "tok" not in repr(decl)


def test_allowed_tools_and_approval_forms() -> None:
    decl = parse_mcp_tool(mcp(allowed_tools=["add"], require_approval="never", server_description="d"), 0)
    assert decl.allowed_tools is not None and decl.allowed_tools.tool_names == ("add",)
    assert decl.require_approval.mode == "never" and decl.server_description == "d"
    decl = parse_mcp_tool(
        mcp(
            allowed_tools={"read_only": True},
            require_approval={"never": {"tool_names": ["add"]}, "always": {"read_only": False}},
        ),
        0,
    )
    assert decl.allowed_tools is not None and decl.allowed_tools.read_only is True
    policy = decl.require_approval
    assert policy.mode == "filter" and policy.never is not None and policy.never.tool_names == ("add",)
    assert policy.always is not None and policy.always.read_only is False
    assert parse_mcp_tool(mcp(require_approval=None, allowed_tools=None), 0).require_approval.mode == "always"


@pytest.mark.parametrize(
    ("decl", "param", "code"),
    [
        ({"type": "mcp", "server_url": URL}, "tools[2].server_label", "missing_required_parameter"),
        (mcp(server_label=7), "tools[2].server_label", "invalid_type"),
        (mcp(server_url=None, connector_id="connector_gmail"), "tools[2].connector_id", "invalid_value"),
        (mcp(tunnel_id="tunnel_" + "a" * 32), "tools[2].tunnel_id", "invalid_value"),
        (mcp(server_url="ftp://h/mcp"), "tools[2].server_url", "invalid_value"),
        (mcp(server_url="not a url"), "tools[2].server_url", "invalid_value"),
        (mcp(server_url=5), "tools[2].server_url", "invalid_type"),
        (mcp(headers=["X"]), "tools[2].headers", "invalid_type"),
        (mcp(headers={"X-Demo": 1}), "tools[2].headers.X-Demo", "invalid_type"),
        (mcp(headers={"Bad Name": "v"}), "tools[2].headers", "invalid_value"),
        (mcp(headers={"X": "a\r\nInjected: 1"}), "tools[2].headers.X", "invalid_value"),
        (mcp(authorization=123), "tools[2].authorization", "invalid_type"),
        (mcp(authorization="  "), "tools[2].authorization", "invalid_value"),
        (mcp(server_description=1), "tools[2].server_description", "invalid_type"),
        (mcp(allowed_tools="add"), "tools[2].allowed_tools", "invalid_type"),
        (mcp(allowed_tools=["add", 1]), "tools[2].allowed_tools", "invalid_type"),
        (mcp(allowed_tools={"tool_names": "add"}), "tools[2].allowed_tools.tool_names", "invalid_type"),
        (mcp(allowed_tools={"read_only": "yes"}), "tools[2].allowed_tools.read_only", "invalid_type"),
        (mcp(allowed_tools={"names": ["add"]}), "tools[2].allowed_tools.names", "unknown_parameter"),
        (mcp(require_approval="sometimes"), "tools[2].require_approval", "invalid_value"),
        (mcp(require_approval=True), "tools[2].require_approval", "invalid_type"),
        (mcp(require_approval={"maybe": {}}), "tools[2].require_approval.maybe", "unknown_parameter"),
        (
            mcp(require_approval={"never": {"tool_names": [1]}}),
            "tools[2].require_approval.never.tool_names",
            "invalid_type",
        ),
        ({"type": "mcp", "server_label": "nowhere"}, "tools[2].server_url", "missing_required_parameter"),
    ],
)
def test_invalid_declarations_name_the_field(decl: dict[str, Any], param: str, code: str) -> None:
    error = rejected(decl)
    assert error.param == param and error.code == code


def test_unsupported_connectors_say_so() -> None:
    error = rejected({"type": "mcp", "server_label": "gmail", "connector_id": "connector_gmail"})
    assert "not supported" in error.message and "server_url" in error.message


def test_duplicate_labels() -> None:
    tools = [mcp(), {"type": "function", "name": "f"}, mcp(server_url="https://other.example/mcp")]
    with pytest.raises(APIError) as caught:
        parse_mcp_tools(tools)
    assert caught.value.param == "tools[2].server_label"
    decls = parse_mcp_tools([{"type": "function", "name": "f"}, mcp()])
    assert [(d.index, d.label) for d in decls] == [(1, "demo")]


def test_configured_servers() -> None:
    configured = {
        "local": McpServerSettings(transport="stdio", command="python", args=["srv.py"], env={"K": "v"}, timeout_s=7),
        "remote": {
            "url": "https://internal.example/mcp",
            "headers": {"Authorization": "Bearer op", "X-A": "1"},
        },
    }
    local = parse_mcp_tool({"type": "mcp", "server_label": "local", "require_approval": "never"}, 0, configured)
    assert local.configured and local.server_url is None
    spec = local.spec
    assert (spec.transport, spec.command, spec.args, spec.env, spec.timeout_s) == (
        "stdio",
        "python",
        ["srv.py"],
        {"K": "v"},
        7,
    )
    remote = parse_mcp_tool(
        {"type": "mcp", "server_label": "remote", "authorization": "user", "headers": {"X-B": "2"}},
        1,
        configured,
    )
    assert remote.spec.transport == "streamable_http" and remote.spec.url == "https://internal.example/mcp"
    assert remote.spec.headers == {"X-A": "1", "X-B": "2", "Authorization": "Bearer user"}
    assert config_server("remote", configured["remote"]).headers["Authorization"] == "Bearer op"
    # A request's server_url wins over a configured server of the same label.
    assert parse_mcp_tool(mcp(server_label="local"), 0, configured).spec.url == URL
    # An incomplete operator entry is a clear error, not a crash.
    error = rejected({"type": "mcp", "server_label": "bad"}, configured={"bad": {"transport": "stdio"}})
    assert error.param == "tools[2].server_label" and "misconfigured" in error.message


# --- filters ----------------------------------------------------------------------------------------


def test_allowed_tools() -> None:
    everything = parse_mcp_tool(mcp(), 0)
    by_name = parse_mcp_tool(mcp(allowed_tools=["add"]), 0)
    read_only = parse_mcp_tool(mcp(allowed_tools={"read_only": True}), 0)
    both = parse_mcp_tool(mcp(allowed_tools={"tool_names": ["add", "info"], "read_only": True}), 0)
    add, info = tool("add"), tool("info", read_only=True)
    assert is_allowed(everything, add) and is_allowed(everything, info)
    assert is_allowed(by_name, add) and not is_allowed(by_name, info)
    assert not is_allowed(read_only, add) and is_allowed(read_only, info)
    assert not is_allowed(both, add) and is_allowed(both, info) and not is_allowed(both, tool("x", True))


@pytest.mark.parametrize(
    ("require_approval", "add", "info"),
    [
        ("always", True, True),
        ("never", False, False),
        ({"never": {"tool_names": ["add"]}}, False, True),
        ({"never": {"read_only": True}}, True, False),
        ({"always": {"tool_names": ["add"]}}, True, False),
        ({"always": {"read_only": False}}, True, False),
        ({"always": {"tool_names": ["add"]}, "never": {"tool_names": ["add", "info"]}}, True, False),
        ({"always": {"tool_names": ["other"]}, "never": {"tool_names": ["other2"]}}, True, True),
        ({}, True, True),
    ],
)
def test_needs_approval(require_approval: Any, add: bool, info: bool) -> None:
    decl = parse_mcp_tool(mcp(require_approval=require_approval), 0)
    assert needs_approval(decl, tool("add")) is add
    assert needs_approval(decl, tool("info", read_only=True)) is info


def test_read_only_spellings() -> None:
    decl = parse_mcp_tool(mcp(allowed_tools={"read_only": True}), 0)
    assert is_allowed(decl, {"name": "a", "annotations": {"read_only_hint": True}})
    assert not is_allowed(decl, {"name": "a", "annotations": None})
    assert not is_allowed(decl, {"name": "a"})


# --- function tools ---------------------------------------------------------------------------------


def declared(label: str, **fields: Any) -> McpToolDecl:
    return parse_mcp_tool(mcp(server_label=label, **fields), 0)


def test_function_tools_named_after_tools_and_prefixed_on_collision() -> None:
    a = declared("alpha")
    b = declared("beta", allowed_tools=["search", "add"])
    functions, names = function_tools(
        [(a, [tool("add"), tool("only_a")]), (b, [tool("add"), tool("search"), tool("hidden")])]
    )
    assert names == {
        "alpha__add": ("alpha", "add"),
        "only_a": ("alpha", "only_a"),
        "beta__add": ("beta", "add"),
        "search": ("beta", "search"),
    }
    assert functions[1] == {
        "type": "function",
        "name": "only_a",
        "description": "only_a!",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
    assert function_name_for(names, "beta", "add") == "beta__add"
    assert function_name_for(names, "beta", "hidden") is None


def test_function_names_are_valid_and_unique() -> None:
    long = "x" * 80
    a, b = declared("my server"), declared("b")
    functions, names = function_tools(
        [(a, [tool("do.thing"), tool(long), tool("python")]), (b, [tool(long), tool("do_thing")])],
        reserved={"python"},
    )
    assert len(names) == 5 and len({f["name"] for f in functions}) == 5
    for name in names:
        assert 1 <= len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)
    assert names["my_server__python"] == ("my server", "python")
    assert sorted(target for target in names.values()) == sorted(
        [
            ("my server", "do.thing"),
            ("my server", long),
            ("my server", "python"),
            ("b", long),
            ("b", "do_thing"),
        ]
    )


# --- items ------------------------------------------------------------------------------------------


def test_items() -> None:
    listing = list_tools_item("demo", [{**tool("add"), "extra": 1}])
    assert listing["id"].startswith("mcpl_") and listing["type"] == "mcp_list_tools"
    assert listing["tools"] == [tool("add")] and listing["error"] is None and listing["server_label"] == "demo"
    failed = list_tools_item("demo", [], "down", item_id=listing["id"])
    assert failed["id"] == listing["id"] and failed["error"] == "down"

    skeleton = call_item_in_progress("demo", "add")
    assert skeleton["id"].startswith("mcp_") and skeleton["status"] == "in_progress" and skeleton["arguments"] == ""
    done = call_item("demo", "add", '{"a":1}', McpCallOutcome(output="2"), item_id=skeleton["id"])
    assert done == {
        "type": "mcp_call",
        "id": skeleton["id"],
        "server_label": "demo",
        "name": "add",
        "arguments": '{"a":1}',
        "output": "2",
        "error": None,
        "status": "completed",
        "approval_request_id": None,
    }
    error = {"type": "http_error", "code": 502, "message": "down"}
    failed_call = call_item("demo", "add", "{}", McpCallOutcome(error=error), "mcpr_1")
    assert failed_call["status"] == "failed" and failed_call["error"] == error and failed_call["output"] is None
    assert failed_call["approval_request_id"] == "mcpr_1"
    assert model_output(McpCallOutcome(output="2")) == "2"
    assert model_output(McpCallOutcome(error=error)) == "Error: down"

    request = approval_request_item("demo", "add", '{"a":1}')
    assert request["id"].startswith("mcpr_")
    assert request == {
        **request,
        "type": "mcp_approval_request",
        "server_label": "demo",
        "arguments": '{"a":1}',
    }


def test_parse_arguments() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {} and parse_arguments({"b": 2}) == {"b": 2}
    for bad in ("{", "[1]"):
        outcome = parse_arguments(bad)
        assert isinstance(outcome, McpCallOutcome) and outcome.error is not None
        assert outcome.error["code"] == -32602


# --- history ----------------------------------------------------------------------------------------


def test_history_helpers() -> None:
    first = list_tools_item("demo", [tool("add")])
    later = list_tools_item("demo", [tool("add"), tool("echo")])
    broken = list_tools_item("down", [], "unreachable")
    request = approval_request_item("demo", "add", "{}")
    history = [first, {"type": "message", "role": "user", "content": "hi"}, later, broken, request]
    assert listed_labels(history) == {"demo"}
    known = tools_from_history(history, "demo")
    assert known is not None and [t["name"] for t in known] == ["add", "echo"]
    assert tools_from_history(history, "down") is None and tools_from_history(history, "other") is None
    assert find_approval_request(history, request["id"]) == request
    assert find_approval_request(history, "mcpr_nope") is None


def test_approval_responses() -> None:
    open_request = approval_request_item("demo", "add", "{}")
    done_request = approval_request_item("demo", "echo", "{}")
    executed = call_item("demo", "echo", "{}", McpCallOutcome(output="x"), done_request["id"])
    history = [open_request, done_request, executed]
    answers = [
        {"type": "mcp_approval_response", "approval_request_id": open_request["id"], "approve": True},
        {"type": "mcp_approval_response", "approval_request_id": done_request["id"], "approve": True},
        {"type": "message", "role": "user", "content": "go"},
    ]
    pairs = approval_responses(history, answers)
    assert pairs == [(open_request, answers[0])]
    with pytest.raises(APIError) as caught:
        approval_responses(history, [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x"}])
    assert caught.value.param == "input" and "mcpr_x" in caught.value.message
