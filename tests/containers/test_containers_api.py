"""The Containers API and container files through the official SDK, on real sandboxes."""

import time

import openai
import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox


def advance_clock(gateway: Gateway, seconds: float) -> None:
    service = gateway.app.state.containers
    offset = seconds
    service.clock = lambda: time.time() + offset


def test_container_crud(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    created = client.containers.create(name="crud", expires_after={"anchor": "last_active_at", "minutes": 5})
    assert created.id.startswith("cntr_")
    assert created.status == "running"
    assert created.expires_after is not None and created.expires_after.minutes == 5
    assert created.memory_limit == "1g"
    assert client.containers.retrieve(created.id).name == "crud"
    assert created.id in [c.id for c in client.containers.list(limit=100)]
    client.containers.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.delete(created.id)


def test_bad_container_requests(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.containers.create(name="x", memory_limit="3g")  # type: ignore[arg-type]
    assert caught.value.param == "memory_limit"
    with pytest.raises(openai.NotFoundError) as unknown_file:
        client.containers.create(name="x", file_ids=["file-1"])
    assert unknown_file.value.param == "file_ids[0]"
    before = len(client.containers.list(limit=100).data)
    with pytest.raises(openai.BadRequestError) as malformed:
        client.containers.create(name="x", extra_body={"skills": [{"type": "skill_reference", "skill_id": "s"}]})
    assert malformed.value.param == "skills[0].skill_id" and malformed.value.code == "invalid_value"
    with pytest.raises(openai.NotFoundError) as unknown_skill:
        client.containers.create(name="x", extra_body={"skills": [{"type": "skill_reference", "skill_id": "skill_1"}]})
    assert unknown_skill.value.param == "skills[0]"
    assert len(client.containers.list(limit=100).data) == before, "nothing allocated for a refused request"


def test_container_files(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    container = client.containers.create(name="files")
    uploaded = client.containers.files.create(container.id, file=("data.csv", b"a,b\n1,2\n"))
    assert uploaded.id.startswith("cfile_")
    assert uploaded.path == "/mnt/data/data.csv"
    assert uploaded.bytes == 8 and uploaded.source == "user"
    listed = client.containers.files.list(container.id)
    assert [f.id for f in listed.data] == [uploaded.id]
    assert client.containers.files.retrieve(uploaded.id, container_id=container.id).path == uploaded.path
    content = client.containers.files.content.retrieve(uploaded.id, container_id=container.id)
    assert content.read() == b"a,b\n1,2\n"
    client.containers.files.delete(uploaded.id, container_id=container.id)
    assert client.containers.files.list(container.id).data == []
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=container.id)


def test_idle_container_expires_and_is_reported_expired(sandboxed: Gateway, mock: MockUpstream) -> None:
    client = sandboxed.client()
    container = client.containers.create(name="short", expires_after={"anchor": "last_active_at", "minutes": 1})
    try:
        advance_clock(sandboxed, 120)
        assert client.containers.retrieve(container.id).status == "expired"
        assert not sandboxed.app.state.containers.hosts.local.sandboxes.get(container.id)
        with pytest.raises(openai.BadRequestError) as caught:
            client.containers.files.create(container.id, file=("a.txt", b"x"))
        assert caught.value.body["message"] == "Container is expired."  # type: ignore[index]
    finally:
        advance_clock(sandboxed, 0)


def test_containers_survive_a_gateway_restart(
    mock: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.conftest import start_gateway
    from tests.fixtures.sandboxes import sandbox_settings

    data_dir = tmp_path_factory.mktemp("restart")
    with start_gateway(mock, data_dir, sandbox=sandbox_settings(sandbox_python)) as first:
        client = first.client()
        container = client.containers.create(name="durable")
        client.containers.files.create(container.id, file=("kept.txt", b"still here"))
    with start_gateway(mock, data_dir, sandbox=sandbox_settings(sandbox_python)) as second:
        client = second.client()
        assert client.containers.retrieve(container.id).status == "running"
        code = '{"code": "print(open(\'/mnt/data/kept.txt\').read())"}'
        response = client.responses.create(
            model="mock-model",
            input=f"[[call python {code}]]",
            tools=[{"type": "code_interpreter", "container": container.id}],
        )
        assert response.output_text == "Done. Last tool output: still here"


def test_a_full_gateway_answers_429_with_retry_after(
    mock: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from corral.config import SandboxSettings
    from tests.conftest import start_gateway

    settings = SandboxSettings(python=sandbox_python, warm_pool_size=0, max_containers=1)
    with start_gateway(mock, tmp_path_factory.mktemp("full"), sandbox=settings) as gateway:
        client = gateway.client()
        client.containers.create(name="only")
        with pytest.raises(openai.RateLimitError) as caught:
            client.containers.create(name="one too many")
        assert caught.value.response.headers["retry-after"] == "30"
        with pytest.raises(openai.RateLimitError):
            client.responses.create(
                model="mock-model", input="x", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
            )
