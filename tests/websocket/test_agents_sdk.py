"""The Agents SDK's WebSocket transport (`responses_websocket_session`) against Corral, unchanged,
over both upstream kinds: a plain turn, a function tool the SDK runs between two responses on
one connection, and `previous_response_id` chaining across runs."""

import pytest
from agents import Agent, ModelSettings, function_tool, responses_websocket_session, set_tracing_disabled

from tests.conftest import Gateway
from tests.support.mock import MockUpstream


@pytest.fixture(autouse=True)
def no_tracing() -> None:
    set_tracing_disabled(True)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def test_a_run_over_the_websocket_transport(gateway: Gateway, mock: MockUpstream) -> None:
    agent = Agent(name="echo", instructions="Answer briefly.", model="mock-model")
    async with responses_websocket_session(api_key="test-key", base_url=gateway.url) as session:
        result = await session.run(agent, "Hello over a socket")
    assert result.final_output == "You said: Hello over a socket"
    assert mock.bodies()[-1].get("instructions") == "Answer briefly." or any(
        message.get("content") == "Answer briefly." for message in mock.bodies()[-1].get("messages", [])
    )


async def test_a_function_tool_between_two_responses(gateway: Gateway, mock: MockUpstream) -> None:
    agent = Agent(
        name="weather",
        instructions="Use the tool.",
        model="mock-model",
        tools=[get_weather],
        model_settings=ModelSettings(store=False),
    )
    async with responses_websocket_session(api_key="test-key", base_url=gateway.url) as session:
        result = await session.run(agent, '[[call get_weather {"city": "Lyon"}]] Weather in Lyon?')
    assert result.final_output == "Done. Last tool output: sunny in Lyon"


async def test_runs_chained_by_previous_response_id(gateway: Gateway, mock: MockUpstream) -> None:
    agent = Agent(name="echo", model="mock-model")
    async with responses_websocket_session(api_key="test-key", base_url=gateway.url) as session:
        first = await session.run(agent, "The password is swordfish")
        second = await session.run(agent, "What was the password?", previous_response_id=first.last_response_id)
    assert second.final_output == "You said: What was the password?"
    texts = str(mock.bodies()[-1])
    assert "The password is swordfish" in texts and "You said: The password is swordfish" in texts
