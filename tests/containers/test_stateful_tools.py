"""code_interpreter and shell in the tool loop: resolution, state across requests, events, citations."""

import concurrent.futures
import time

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream, call

pytestmark = pytest.mark.sandbox

AUTO_CI = {"type": "code_interpreter", "container": {"type": "auto"}}
AUTO_SHELL = {"type": "shell", "environment": {"type": "container_auto"}}
INCLUDE = ["code_interpreter_call.outputs"]


def test_python_state_is_kept_across_requests_with_auto(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    first = client.responses.create(model="mock-model", input=call("python", code="x = 20 + 1"), tools=[AUTO_CI])
    ci = next(item for item in first.output if item.type == "code_interpreter_call")
    assert ci.container_id.startswith("cntr_")
    assert ci.id.startswith("ci_") and ci.status == "completed"
    assert ci.outputs is None, "outputs only with the include"
    second = client.responses.create(
        model="mock-model",
        input=call("python", code="print(x * 2)"),
        tools=[AUTO_CI],
        previous_response_id=first.id,
        include=INCLUDE,  # type: ignore[list-item]
    )
    ci2 = next(item for item in second.output if item.type == "code_interpreter_call")
    assert ci2.container_id == ci.container_id
    assert ci2.outputs is not None and ci2.outputs[0].type == "logs" and ci2.outputs[0].logs.strip() == "42"
    assert second.output_text == "Done. Last tool output: 42"


def test_explicit_container_and_errors(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    container = client.containers.create(name="explicit")
    tool = {"type": "code_interpreter", "container": container.id}
    response = client.responses.create(model="mock-model", input=call("python", code="print('hi')"), tools=[tool])  # type: ignore[list-item]
    assert next(i for i in response.output if i.type == "code_interpreter_call").container_id == container.id

    mock.clear()
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(
            model="mock-model", input="x", tools=[{"type": "code_interpreter", "container": "cntr_nope"}]
        )
    assert missing.value.code == "stateful_tool_bootstrap_failed"
    client.containers.delete(container.id)
    service = sandboxed.app.state.containers
    expired = client.containers.create(name="to-expire", expires_after={"anchor": "last_active_at", "minutes": 1})
    service.clock = lambda: time.time() + 120
    try:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as caught:
                client.responses.create(
                    model="mock-model",
                    input="x",
                    stream=stream,
                    tools=[{"type": "code_interpreter", "container": expired.id}],
                )
            assert caught.value.body["message"] == "Container is expired."  # type: ignore[index]
    finally:
        service.clock = time.time
    assert mock.requests() == [], "no upstream call for a request that fails bootstrap"


def test_auto_replaces_an_expired_container_from_history(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    first = client.responses.create(model="mock-model", input=call("python", code="y = 1"), tools=[AUTO_CI])
    old = next(i for i in first.output if i.type == "code_interpreter_call").container_id
    service = sandboxed.app.state.containers
    service.clock = lambda: time.time() + 3600
    try:
        second = client.responses.create(
            model="mock-model",
            input=call("python", code="print('fresh')"),
            tools=[AUTO_CI],
            previous_response_id=first.id,
        )
    finally:
        service.clock = time.time
    new = next(i for i in second.output if i.type == "code_interpreter_call").container_id
    assert new != old
    assert second.output_text == "Done. Last tool output: fresh"


def test_concurrent_auto_requests_on_one_chain_share_one_container(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    root = client.responses.create(model="mock-model", input="start")

    def run(index: int) -> str:
        response = client.responses.create(
            model="mock-model",
            input=call("python", code=f"print({index})"),
            tools=[AUTO_CI],
            previous_response_id=root.id,
        )
        return next(i for i in response.output if i.type == "code_interpreter_call").container_id

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        containers = set(pool.map(run, range(4)))
    assert len(containers) == 1


def test_streaming_code_interpreter_events_in_order(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    with client.responses.stream(
        model="mock-model",
        input=call("python", code="print(6 * 7)"),
        tools=[AUTO_CI],
        include=INCLUDE,  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    ci_index = next(
        e.output_index
        for e in events
        if e.type == "response.output_item.added" and e.item.type == "code_interpreter_call"
    )
    kinds = [e.type for e in events if getattr(e, "output_index", None) == ci_index]
    assert kinds == [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    added = next(e for e in events if e.type == "response.output_item.added" and e.item.type == "code_interpreter_call")
    assert added.item.container_id.startswith("cntr_")  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "Done. Last tool output: 42"


def test_plot_is_saved_and_cited(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.savefig('/mnt/data/plot.png')"
    prompt = call("python", code=code) + " [[say Here it is: [plot](sandbox:/mnt/data/plot.png)]]"
    for stream in (False, True):
        if stream:
            with client.responses.stream(model="mock-model", input=prompt, tools=[AUTO_CI]) as events:
                seen = [e.type for e in events]
                response = events.get_final_response()
            assert "response.output_text.annotation.added" in seen
            assert seen.index("response.output_text.annotation.added") < seen.index("response.output_text.done")
        else:
            response = client.responses.create(model="mock-model", input=prompt, tools=[AUTO_CI])
        message = response.output[-1]
        assert message.type == "message"
        annotation = message.content[0].annotations[0]  # type: ignore[union-attr]
        assert annotation.type == "container_file_citation"
        assert annotation.filename == "plot.png"
        text = message.content[0].text  # type: ignore[union-attr]
        assert text[annotation.start_index : annotation.end_index] == "sandbox:/mnt/data/plot.png"
        png = client.containers.files.content.retrieve(annotation.file_id, container_id=annotation.container_id).read()
        assert png.startswith(b"\x89PNG")


def test_shell_and_python_share_one_container(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    prompt = call("shell", commands=["echo shared > note.txt", "ls /mnt/data"]) + call(
        "python", code="print(open('/mnt/data/note.txt').read().strip())"
    )
    response = client.responses.create(model="mock-model", input=prompt, tools=[AUTO_CI, AUTO_SHELL])
    kinds = [item.type for item in response.output]
    assert kinds == ["shell_call", "shell_call_output", "code_interpreter_call", "message"]
    shell_call, shell_output, ci = response.output[0], response.output[1], response.output[2]
    assert shell_call.action.commands == ["echo shared > note.txt", "ls /mnt/data"]  # type: ignore[union-attr]
    assert shell_output.output[1].stdout.strip().endswith("note.txt")  # type: ignore[union-attr]
    assert shell_output.output[0].outcome.type == "exit" and shell_output.output[0].outcome.exit_code == 0  # type: ignore[union-attr]
    assert shell_call.environment.container_id == ci.container_id  # type: ignore[union-attr]
    assert response.output_text == "Done. Last tool output: shared"


def test_streaming_shell_events(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    with client.responses.stream(
        model="mock-model", input=call("shell", commands=["echo one", "exit 4"]), tools=[AUTO_SHELL]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds.count("response.shell_call_command.added") == 2
    assert kinds.count("response.shell_call_output_content.done") == 2
    output = next(item for item in final.output if item.type == "shell_call_output")
    assert [entry.outcome.exit_code for entry in output.output] == [0, 4]  # type: ignore[union-attr]


def test_python_errors_and_timeouts_reach_the_model(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    failed = client.responses.create(model="mock-model", input=call("python", code="1/0"), tools=[AUTO_CI])
    assert "ZeroDivisionError" in failed.output_text
    assert failed.status == "completed"


def test_local_shell_call_is_returned_to_the_client(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    tools = [{"type": "shell", "environment": {"type": "local"}}]
    first = client.responses.create(model="mock-model", input=call("shell", commands=["uname -a"]), tools=tools)  # type: ignore[arg-type]
    shell_call = first.output[-1]
    assert shell_call.type == "shell_call" and shell_call.action.commands == ["uname -a"]
    second = client.responses.create(
        model="mock-model",
        previous_response_id=first.id,
        tools=tools,  # type: ignore[arg-type]
        input=[
            {
                "type": "shell_call_output",
                "call_id": shell_call.call_id,
                "output": [{"stdout": "Linux box", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}],
            }
        ],
    )
    assert "Linux box" in second.output_text


def test_max_tool_calls_makes_the_response_incomplete(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    prompt = call("python", code="a = 1") + call("python", code="b = 2")
    response = client.responses.create(model="mock-model", input=prompt, tools=[AUTO_CI], max_tool_calls=1)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_tool_calls"  # type: ignore[comparison-overlap]


def test_context_item_is_ahead_of_the_input_in_every_iteration(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    client.responses.create(
        model="mock-model",
        input="look " + call("python", code="print(1)") + call("python", code="print(2)"),
        tools=[AUTO_CI],
    )
    bodies = mock.bodies()
    assert len(bodies) == 3, "three model calls: two tool turns and the answer"
    for body in bodies:
        entries = body.get("input") or body.get("messages")
        texts = [str(entry.get("content")) for entry in entries]
        context = next(i for i, text in enumerate(texts) if "persistent sandbox" in text)
        caller = next(i for i, text in enumerate(texts) if "look" in text)
        assert context < caller
        assert sum("persistent sandbox" in text for text in texts) == 1
