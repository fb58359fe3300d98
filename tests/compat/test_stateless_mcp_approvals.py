"""Hosted-MCP approvals answered statelessly, as the Agents SDK answers them: the
`mcp_approval_request` comes back in `input` beside the `mcp_approval_response`, with no
`previous_response_id` and often `store: false`."""

from typing import Any

import openai
import pytest
from agents import Agent, HostedMCPTool, ModelSettings, OpenAIResponsesModel, RunConfig, Runner
from agents.items import MCPApprovalRequestItem, MCPApprovalResponseItem
from openai.types.responses.tool_param import Mcp

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, call


def mcp_config(url: str) -> Mcp:
    return {"type": "mcp", "server_label": "demo", "server_url": url, "require_approval": "always"}


def agent_for(gateway: Gateway, url: str, **tool: Any) -> Agent[Any]:
    model = OpenAIResponsesModel(model="mock-model", openai_client=gateway.async_client())
    return Agent(
        name="Assistant",
        instructions="Use the demo server's tools.",
        model=model,
        model_settings=ModelSettings(store=False),
        tools=[HostedMCPTool(tool_config=mcp_config(url), **tool)],
    )


RUN = RunConfig(tracing_disabled=True)


async def test_human_in_the_loop_approval_finishes(gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    agent = agent_for(gateway, mcp_url)
    result = await Runner.run(agent, call("add", a=20, b=22), run_config=RUN)
    assert len(result.interruptions) == 1
    state = result.to_state()
    state.approve(result.interruptions[0])
    resumed = await Runner.run(agent, state, run_config=RUN)
    assert resumed.final_output == "Done. Last tool output: 42"
    resumed_body = mock.bodies()[-1]
    assert "previous_response_id" not in resumed_body


async def test_on_approval_callback_approves_and_rejects(gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    seen: list[str] = []

    def decide(request: Any) -> Any:
        seen.append(request.data.name)
        return {"approve": True}

    agent = agent_for(gateway, mcp_url, on_approval_request=decide)
    result = await Runner.run(agent, call("echo", text="yes"), run_config=RUN)
    assert seen == ["echo"]
    assert result.final_output == "Done. Last tool output: yes"
    kinds = [type(item) for item in result.new_items]
    assert MCPApprovalRequestItem in kinds and MCPApprovalResponseItem in kinds

    refused = await Runner.run(
        agent_for(gateway, mcp_url, on_approval_request=lambda _: {"approve": False, "reason": "not today"}),
        call("echo", text="no"),
        run_config=RUN,
    )
    assert "denied" in str(refused.final_output) and "not today" in str(refused.final_output)


def test_raw_stateless_answer_over_the_openai_sdk(gateway: Gateway, mock: MockUpstream, mcp_url: str) -> None:
    client = gateway.client()
    tools: list[Any] = [mcp_config(mcp_url)]
    first = client.responses.create(model="mock-model", input=call("add", a=1, b=2), tools=tools, store=False)
    request = first.output[-1]
    assert request.type == "mcp_approval_request"
    replay = [
        {"role": "user", "content": call("add", a=1, b=2)},
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True},
    ]
    second = client.responses.create(model="mock-model", input=replay, tools=tools, store=False)
    executed = [item for item in second.output if item.type == "mcp_call"]
    assert len(executed) == 1 and executed[0].approval_request_id == request.id and executed[0].output == "3"
    assert not any(item.type == "mcp_list_tools" for item in second.output), "the replayed listing is reused"
    assert second.output_text == "Done. Last tool output: 3"

    answered_again = [*replay, *(item.model_dump(exclude_none=True) for item in second.output)]
    answered_again.append({"role": "user", "content": "thanks"})
    third = client.responses.create(model="mock-model", input=answered_again, tools=tools, store=False)
    assert not any(item.type == "mcp_call" for item in third.output), "an approval already carried out is not rerun"

    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(
            model="mock-model",
            input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_nowhere", "approve": True}],
            tools=tools,
            store=False,
        )
    assert raised.value.param == "input"
