"""Bad input found by fuzzing: each is a 400 or 404 with OpenAI's error envelope, on SQLite and on
PostgreSQL, never a 500."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.protocol.errors import APIError
from tests.conftest import Gateway
from tests.gateway.faults import DATABASES, gateway_on
from tests.support.mock import MockUpstream

NUL = "\x00"


@pytest.fixture(scope="module", params=[DATABASES[0], pytest.param(DATABASES[1], marks=pytest.mark.postgres)])
def gw(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with gateway_on(request.param, mock_upstream, tmp_path_factory.mktemp(f"bad-{request.param}")) as gateway:
        yield gateway


def assert_envelope(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert answer.status_code in statuses, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


def create(gw: Gateway, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/responses", json={"model": "mock-model", **body}, timeout=30)


@pytest.fixture(scope="module")
def stored(gw: Gateway) -> dict[str, str]:
    """A stored response and a conversation with an item, to aim bad cursors at."""
    conversation = httpx.post(f"{gw.url}/conversations", json={"items": [{"role": "user", "content": "hello"}]}).json()
    response = create(gw, input="hi", conversation=conversation["id"]).json()
    return {"response": response["id"], "conversation": conversation["id"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/responses/resp_%00x"),
        ("DELETE", "/responses/resp_%00x"),
        ("GET", "/responses/resp_%00x/input_items"),
        ("POST", "/responses/resp_%00x/cancel"),
        ("GET", "/conversations/conv_%00x"),
        ("DELETE", "/conversations/conv_%00x"),
        ("GET", "/conversations/conv_%00x/items"),
        ("GET", "/conversations/{conversation}/items/msg_%00x"),
        ("DELETE", "/conversations/{conversation}/items/msg_%00x"),
        ("GET", "/responses/{response}/input_items?after=msg_%00x"),
        ("GET", "/conversations/{conversation}/items?after=msg_%00x"),
        ("GET", "/containers/cntr_%00x"),
        ("DELETE", "/containers/cntr_%00x"),
        ("GET", "/containers?after=cntr_%00x"),
        ("GET", "/containers?name=a%00b"),
    ],
)
def test_a_nul_byte_in_an_id_a_cursor_or_a_name(gw: Gateway, stored: dict[str, str], method: str, path: str) -> None:
    answer = httpx.request(method, gw.url + path.format(**stored))
    assert_envelope(answer, 400, 404)


@pytest.mark.parametrize(
    "body",
    [
        {"input": "hi", "previous_response_id": f"resp_{NUL}"},
        {"input": "hi", "conversation": f"conv_{NUL}"},
        {"input": "hi", "conversation": {"id": f"conv_{NUL}"}},
        {"input": [{"type": "item_reference", "id": f"msg_{NUL}"}], "previous_response_id": "resp_missing"},
    ],
)
def test_a_nul_byte_in_an_id_of_a_create_body(gw: Gateway, body: dict[str, Any]) -> None:
    assert_envelope(create(gw, **body), 400, 404)


def test_a_nul_byte_in_a_conversation_update(gw: Gateway, stored: dict[str, str]) -> None:
    answer = httpx.post(f"{gw.url}/conversations/conv_%00x", json={"metadata": {"a": "b"}})
    assert_envelope(answer, 400, 404)


def test_a_shell_call_input_item_without_call_id(gw: Gateway) -> None:
    item = {"type": "shell_call", "action": {"commands": ["ls"]}, "status": "completed"}
    error = assert_envelope(create(gw, input=[item]), 400)
    assert error["param"] == "input[0].call_id"
    assert error["code"] == "missing_required_parameter"


TOO_MANY = {f"k{n}": "v" for n in range(17)}
LONG_KEY = {"k" * 65: "v"}
LONG_VALUE = {"k": "v" * 513}


@pytest.mark.parametrize("metadata", [TOO_MANY, LONG_KEY, LONG_VALUE], ids=["pairs", "key", "value"])
def test_metadata_is_capped_everywhere(gw: Gateway, stored: dict[str, str], metadata: dict[str, str]) -> None:
    for answer in (
        create(gw, input="hi", metadata=metadata),
        httpx.post(f"{gw.url}/conversations", json={"metadata": metadata}),
        httpx.post(f"{gw.url}/conversations/{stored['conversation']}", json={"metadata": metadata}),
    ):
        error = assert_envelope(answer, 400)
        assert error["param"].startswith("metadata")


def test_metadata_at_the_caps_is_accepted(gw: Gateway) -> None:
    metadata = {f"{n:02d}" + "k" * 62: "v" * 512 for n in range(16)}
    assert httpx.post(f"{gw.url}/conversations", json={"metadata": metadata}).status_code == 200


@pytest.mark.parametrize("after", ["1e23", str(10**23), str(2**63), "-2"])
def test_a_replay_cursor_out_of_range(gw: Gateway, after: str) -> None:
    created = create(gw, input="hi", background=True, stream=False).json()
    answer = httpx.get(f"{gw.url}/responses/{created['id']}", params={"stream": "true", "starting_after": after})
    error = assert_envelope(answer, 400)
    assert error["param"] == "starting_after"


def test_a_container_name_over_256_characters(gw: Gateway) -> None:
    answer = httpx.post(f"{gw.url}/containers", json={"name": "n" * 257}, timeout=60)
    assert_envelope(answer, 400)


def test_the_container_name_helper() -> None:
    from corral.protocol.validation import validate_container_name

    assert validate_container_name("n" * 256) == "n" * 256
    for bad in ("n" * 257, f"a{NUL}b", 5, None):
        with pytest.raises(APIError) as caught:
            validate_container_name(bad)
        assert caught.value.status == 400
        assert caught.value.param == "name"


def test_readiness_is_open_without_a_key(gw: Gateway, tmp_path: Path) -> None:
    answer = httpx.get(f"{gw.base}/health/ready")
    assert answer.status_code == 200
    assert answer.json()["checks"]["database"] == "ok"
