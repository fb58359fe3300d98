"""MCP tools run by the gateway against real MCP servers, through both upstream API kinds."""

import json
import sqlite3
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, call


def mcp(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "demo", "server_url": url, "require_approval": "never", **extra}


def test_listing_call_and_answer(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    response = client.responses.create(model="mock-model", input=call("add", a=2, b=3), tools=[mcp(mcp_url)])  # type: ignore[list-item]
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    listing, mcp_call = response.output[0], response.output[1]
    assert {tool.name for tool in listing.tools} >= {"add", "echo", "fail", "sleep", "whoami"}  # type: ignore[union-attr]
    assert mcp_call.name == "add" and mcp_call.output == "5" and mcp_call.error is None  # type: ignore[union-attr]
    assert mcp_call.id.startswith("mcp_") and listing.id.startswith("mcpl_")
    assert response.output_text == "Done. Last tool output: 5"
    first_upstream = mock.bodies()[0]
    names = {t.get("name") or t.get("function", {}).get("name") for t in first_upstream["tools"]}
    assert "add" in names


def test_streaming_events_and_continuous_indexes(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    with client.responses.stream(model="mock-model", input=call("echo", text="hey"), tools=[mcp(mcp_url)]) as stream:  # type: ignore[list-item]
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    call_events = [e.type for e in events if getattr(e, "output_index", None) == 1]
    assert call_events == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    assert kinds.index("response.mcp_list_tools.completed") < kinds.index("response.mcp_call.in_progress")
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    assert added == [0, 1, 2]
    assert final.output_text == "Done. Last tool output: hey"


def test_chained_turn_does_not_list_again(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    first = client.responses.create(model="mock-model", input=call("add", a=1, b=1), tools=[mcp(mcp_url)])  # type: ignore[list-item]
    second = client.responses.create(
        model="mock-model",
        input=call("add", a=2, b=2),
        tools=[mcp(mcp_url)],
        previous_response_id=first.id,  # type: ignore[list-item]
    )
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    assert second.output_text == "Done. Last tool output: 4"


def test_approval_request_then_approve_and_deny(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    tool = mcp(mcp_url, require_approval="always")
    first = client.responses.create(model="mock-model", input=call("add", a=20, b=22), tools=[tool])  # type: ignore[list-item]
    request = first.output[-1]
    assert request.type == "mcp_approval_request" and request.name == "add"
    assert request.id.startswith("mcpr_")
    approved = client.responses.create(
        model="mock-model",
        previous_response_id=first.id,
        tools=[tool],  # type: ignore[list-item]
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    executed = approved.output[0]
    assert executed.type == "mcp_call" and executed.approval_request_id == request.id and executed.output == "42"
    assert approved.output_text == "Done. Last tool output: 42"

    again = client.responses.create(model="mock-model", input=call("add", a=1, b=2), tools=[tool])  # type: ignore[list-item]
    denied = client.responses.create(
        model="mock-model",
        previous_response_id=again.id,
        tools=[tool],  # type: ignore[list-item]
        input=[{"type": "mcp_approval_response", "approval_request_id": again.output[-1].id, "approve": False}],
    )
    assert not any(item.type == "mcp_call" for item in denied.output)
    assert "denied" in denied.output_text

    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="mock-model",
            previous_response_id=again.id,
            tools=[tool],  # type: ignore[list-item]
            input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_unknown", "approve": True}],
        )


def test_per_tool_approval_filter(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    tool = mcp(mcp_url, require_approval={"never": {"tool_names": ["echo"]}})
    free = client.responses.create(model="mock-model", input=call("echo", text="ok"), tools=[tool])  # type: ignore[list-item]
    assert free.output[-2].type == "mcp_call"
    gated = client.responses.create(model="mock-model", input=call("add", a=1, b=1), tools=[tool])  # type: ignore[list-item]
    assert gated.output[-1].type == "mcp_approval_request"


def test_allowed_tools_limit_what_the_model_sees(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    client.responses.create(model="mock-model", input="hi", tools=[mcp(mcp_url, allowed_tools=["echo"])])  # type: ignore[list-item]
    sent = mock.bodies()[0]["tools"]
    assert [t.get("name") or t["function"]["name"] for t in sent] == ["echo"]


def test_headers_reach_the_server_and_are_never_echoed_or_stored(
    mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str
) -> None:
    client = mcp_gateway.client()
    secret = "sk-secret-token-123"
    tool = mcp(mcp_url, authorization=secret, headers={"X-Demo": "custom-value"})
    response = client.responses.create(model="mock-model", input=call("whoami"), tools=[tool])  # type: ignore[list-item]
    assert f"authorization=Bearer {secret} x-demo=custom-value" in response.output_text
    echoed = response.tools[0]
    assert getattr(echoed, "authorization", None) is None
    assert "custom-value" not in json.dumps(response.model_dump()["tools"])
    stored = client.responses.retrieve(response.id)
    assert secret not in json.dumps(stored.model_dump()["tools"])
    with sqlite3.connect(mcp_gateway.settings.database_url().removeprefix("sqlite:///")) as db:
        rows = db.execute("select body from responses where id = ?", (response.id,)).fetchall()
    assert secret not in rows[0][0] and "custom-value" not in rows[0][0]


def test_faults_give_error_items_and_the_gateway_keeps_serving(
    mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str
) -> None:
    client = mcp_gateway.client()
    failing = client.responses.create(model="mock-model", input=call("fail", message="nope"), tools=[mcp(mcp_url)])  # type: ignore[list-item]
    failed_call = failing.output[1]
    assert failed_call.type == "mcp_call" and failed_call.status == "failed"  # type: ignore[union-attr]
    assert failed_call.error is not None and failing.status == "completed"  # type: ignore[union-attr]

    hanging = client.responses.create(model="mock-model", input=call("sleep", seconds=30), tools=[mcp(mcp_url)])  # type: ignore[list-item]
    assert "timed out" in hanging.output[1].error.message  # type: ignore[union-attr]

    unreachable = mcp("http://127.0.0.1:9/mcp", server_label="gone")
    down = client.responses.create(model="mock-model", input="hello", tools=[unreachable])  # type: ignore[list-item]
    assert down.output[0].type == "mcp_list_tools" and down.output[0].error  # type: ignore[union-attr]
    assert down.output_text == "You said: hello"


def test_parallel_calls_one_failing(mcp_gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = mcp_gateway.client()
    prompt = '[[calls add {"a": 1, "b": 2} ;; fail {"message": "x"}]]'
    response = client.responses.create(model="mock-model", input=prompt, tools=[mcp(mcp_url)])  # type: ignore[list-item]
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert sorted(c.status for c in calls) == ["completed", "failed"]  # type: ignore[union-attr]
    assert response.status == "completed"


def test_sse_server(mcp_gateway: Gateway, mock: MockUpstream, mcp_sse_url: str) -> None:
    client = mcp_gateway.client()
    response = client.responses.create(model="mock-model", input=call("add", a=5, b=6), tools=[mcp(mcp_sse_url)])  # type: ignore[list-item]
    assert response.output_text == "Done. Last tool output: 11"


def test_stdio_server_from_the_config(mcp_gateway: Gateway, mock: MockUpstream) -> None:
    client = mcp_gateway.client()
    tool = {"type": "mcp", "server_label": "local-demo", "require_approval": "never"}
    response = client.responses.create(model="mock-model", input=call("echo", text="over stdio"), tools=[tool])  # type: ignore[list-item]
    assert response.output_text == "Done. Last tool output: over stdio"


def test_bad_declarations_are_400(mcp_gateway: Gateway, mock: MockUpstream) -> None:
    client = mcp_gateway.client()
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model="mock-model", input="x", tools=[{"type": "mcp", "server_label": "nowhere"}])  # type: ignore[list-item]
    assert missing.value.param == "tools[0].server_url"
    with pytest.raises(openai.BadRequestError) as bad_url:
        client.responses.create(model="mock-model", input="x", tools=[mcp("ftp://x")])  # type: ignore[list-item]
    assert bad_url.value.param == "tools[0].server_url"
    assert mock.requests() == []
