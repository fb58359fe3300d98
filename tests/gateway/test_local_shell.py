"""The legacy `local_shell` tool over upstreams that do not know it: the call goes back to the client."""

import openai


def test_local_shell_call_round_trip(client: openai.OpenAI) -> None:
    tools = [{"type": "local_shell"}]
    first = client.responses.create(
        model="mock-model", input='[[call local_shell {"command": ["ls", "-la"]}]]', tools=tools
    )  # type: ignore[arg-type]
    call = first.output[-1]
    assert call.type == "local_shell_call"
    assert call.action.command == ["ls", "-la"] and call.id.startswith("lsh_")
    second = client.responses.create(
        model="mock-model",
        previous_response_id=first.id,
        tools=tools,  # type: ignore[arg-type]
        input=[{"type": "local_shell_call_output", "id": call.call_id, "output": '{"output": "total 0"}'}],
    )
    assert second.output_text == 'Done. Last tool output: {"output": "total 0"}'
