"""`context_management` between tool-loop turns: when a tool's output makes the window pass the
threshold, the calls so far are compacted before the next model call, which is sent the summary
instead of them; the compaction item follows the calls in the output, and a later request on the
chain replays the summary, not the output."""

from collections.abc import Iterator

import pytest

from corral.responses.history import SUMMARY_PREFIX
from tests.compaction.test_compaction import model_texts, summary_requests
from tests.conftest import Gateway
from tests.support.mock import MockUpstream, call
from tests.support.sandboxed import sandboxed_gateway

pytestmark = pytest.mark.sandbox

LOUD = "print(' '.join(f'row{n}' for n in range(1500)))"
MANAGEMENT = [{"type": "compaction", "compact_threshold": 1000}]
AUTO_CI = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture(scope="module")
def sandboxed(
    mock_upstream: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with sandboxed_gateway(
        "local", mock_upstream, sandbox_python, tmp_path_factory.mktemp("loop-compaction")
    ) as gateway:
        yield gateway


def test_a_long_tool_output_is_compacted_before_the_next_model_call(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    with client.responses.stream(
        model="mock-model",
        input=call("python", code=LOUD),
        tools=[AUTO_CI],  # type: ignore[list-item]
        context_management=MANAGEMENT,  # type: ignore[arg-type]
    ) as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert [item.type for item in response.output] == ["code_interpreter_call", "compaction", "message"]
    assert "response.compaction.compacting" in kinds
    assert len(summary_requests(mock)) == 1
    summary_input = "\n".join(str(body) for body in summary_requests(mock))
    assert "row1000" in summary_input, "the summary was written from the tool's output"

    last_call = model_texts(mock)
    assert not any("row1499" in text for text in last_call), "the output itself is no longer sent"
    assert any(text.startswith(SUMMARY_PREFIX) for text in last_call)
    assert last_call.index(next(t for t in last_call if t.startswith(SUMMARY_PREFIX))) > last_call.index(
        call("python", code=LOUD)
    ), "the summary of the work follows the question it was done for"

    mock.clear()
    client.responses.create(model="mock-model", input="And then?", previous_response_id=response.id)
    replayed = model_texts(mock)
    assert not any("row1499" in text for text in replayed)
    assert any(text.startswith(SUMMARY_PREFIX) for text in replayed) and replayed[-1] == "And then?"


def test_without_context_management_the_loop_sends_everything(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    response = client.responses.create(model="mock-model", input=call("python", code=LOUD), tools=[AUTO_CI])  # type: ignore[list-item]
    assert [item.type for item in response.output] == ["code_interpreter_call", "message"]
    assert not summary_requests(mock)
    assert response.output_text.startswith("Done. Last tool output: row0 row1")
