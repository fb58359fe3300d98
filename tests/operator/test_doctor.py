"""`corral doctor URL` as a real process: what works against a server, and what does not."""

from collections.abc import Iterator

import pytest

from tests.llm.test_real_model import llama_url  # noqa: F401  (the module's llama.cpp server fixture)
from tests.operator.support import ChatOnlyServer, corral
from tests.support.mock import MockUpstream
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture()
def chat_only_url() -> Iterator[str]:
    with serve_in_thread(ChatOnlyServer().app) as base:
        yield f"{base}/v1"


def checks(stdout: str) -> dict[str, str]:
    """check name -> ok or FAIL"""
    found = {}
    for line in stdout.splitlines():
        status, _, rest = line.strip().partition(" ")
        if status in ("ok", "FAIL"):
            found[rest.strip().split(":", 1)[0]] = status
    return found


def test_everything_works_against_a_chat_server(chat_only_url: str) -> None:
    result = corral("doctor", chat_only_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert checks(result.stdout) == dict.fromkeys(
        ("models", "API", "plain answer", "streamed answer", "tool round trip"), "ok"
    )
    assert "API: /chat/completions" in result.stdout
    assert 'get_weather({"city": "Paris"})' in result.stdout
    assert f"corral serve --upstream {chat_only_url} --upstream-api chat" in result.stdout


def test_a_server_that_makes_no_tool_call_fails_that_check_only(mock: MockUpstream) -> None:
    result = corral("doctor", mock.url)
    assert result.returncode == 1
    found = checks(result.stdout)
    assert found.pop("tool round trip") == "FAIL"
    assert set(found.values()) == {"ok"} and len(found) == 4
    assert "API: /responses" in result.stdout


def test_a_wrong_kind_says_which_kind_answers(chat_only_url: str) -> None:
    result = corral("doctor", chat_only_url, "--api", "responses")
    assert result.returncode == 1
    assert checks(result.stdout) == {"models": "ok", "API": "FAIL"}
    assert "use api: chat (or auto)" in result.stdout


def test_an_unreachable_server_or_a_url_without_v1(chat_only_url: str) -> None:
    down = corral("doctor", f"http://127.0.0.1:{free_port()}/v1")
    assert down.returncode == 1
    assert "FAIL models: cannot connect" in down.stdout
    root = chat_only_url.removesuffix("/v1")
    bare = corral("doctor", root)
    assert bare.returncode == 1
    assert f"try {root}/v1" in bare.stdout


@pytest.mark.llm
def test_everything_works_against_llama_cpp(llama_url: str) -> None:  # noqa: F811
    result = corral("doctor", llama_url, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(checks(result.stdout).values()) == {"ok"} and len(checks(result.stdout)) == 5
    assert "API: /chat/completions" in result.stdout
