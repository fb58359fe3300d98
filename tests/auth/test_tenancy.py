"""Authentication, tenant isolation on every endpoint, admin keys, quotas, and no secret in logs."""

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from corral.config import ApiKeySettings, AuthSettings, QuotaSettings, Settings, UpstreamSettings
from tests.conftest import NO_SANDBOXES, Gateway, start_gateway
from tests.fixtures.sandboxes import sandbox_settings
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox

KEY_A = "sk-tenant-a-0123456789"
KEY_B = "sk-tenant-b-9876543210"
KEY_LIMITED = "sk-limited-5555"
ADMIN = "admin-secret-4242"
SECRETS = (KEY_A, KEY_B, KEY_LIMITED, ADMIN)


@pytest.fixture(scope="module")
def secured(
    mock_upstream: MockUpstream, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("auth")
    keys_file = data_dir / "keys.txt"
    keys_file.write_text(f"# tenant sha256\nteam-b {hashlib.sha256(KEY_B.encode()).hexdigest()}\n")
    auth = AuthSettings(
        keys=[ApiKeySettings(tenant="team-a", key=KEY_A), ApiKeySettings(tenant="limited", key=KEY_LIMITED)],
        keys_file=keys_file,
        admin_key_sha256=hashlib.sha256(ADMIN.encode()).hexdigest(),
        tenant_quotas={"limited": QuotaSettings(requests_per_minute=3, live_containers=1)},
    )
    with start_gateway(mock_upstream, data_dir, auth=auth, sandbox=sandbox_settings(sandbox_python)) as gateway:
        yield gateway


def expect_404(call: Any) -> None:
    with pytest.raises(openai.NotFoundError):
        call()


def test_missing_or_wrong_key_is_401(secured: Gateway, mock: MockUpstream) -> None:
    response = httpx.post(f"{secured.url}/responses", json={"model": "mock-model", "input": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        secured.client(api_key="sk-wrong").responses.create(model="mock-model", input="x")
    assert mock.requests() == []
    assert httpx.get(f"{secured.base}/health").status_code == 200
    assert httpx.get(f"{secured.base}/metrics").status_code == 200


def test_another_tenants_objects_are_404_everywhere(secured: Gateway, mock: MockUpstream) -> None:
    a = secured.client(api_key=KEY_A)
    b = secured.client(api_key=KEY_B)
    response = a.responses.create(model="mock-model", input="a's secret words")
    conversation = a.conversations.create(items=[{"role": "user", "content": "a's conversation"}])
    item_id = a.conversations.items.list(conversation.id).data[0].id
    container = a.containers.create(name="a's container")
    file = a.containers.files.create(container.id, file=("a.txt", b"a's file"))

    expect_404(lambda: b.responses.retrieve(response.id))
    expect_404(lambda: b.responses.delete(response.id))
    expect_404(lambda: b.responses.input_items.list(response.id))
    with pytest.raises(openai.BadRequestError) as chained:
        b.responses.create(model="mock-model", input="x", previous_response_id=response.id)
    with pytest.raises(openai.BadRequestError) as missing:
        b.responses.create(model="mock-model", input="x", previous_response_id="resp_does_not_exist")
    assert chained.value.code == missing.value.code == "previous_response_not_found", "indistinguishable from absent"
    expect_404(lambda: b.conversations.retrieve(conversation.id))
    expect_404(lambda: b.conversations.update(conversation.id, metadata={"x": "y"}))
    expect_404(lambda: b.conversations.delete(conversation.id))
    expect_404(lambda: b.conversations.items.list(conversation.id))
    expect_404(lambda: b.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}]))
    expect_404(lambda: b.conversations.items.retrieve(item_id, conversation_id=conversation.id))
    expect_404(lambda: b.conversations.items.delete(item_id, conversation_id=conversation.id))
    expect_404(lambda: b.responses.create(model="mock-model", input="x", conversation=conversation.id))
    expect_404(lambda: b.containers.retrieve(container.id))
    expect_404(lambda: b.containers.files.list(container.id))
    expect_404(lambda: b.containers.files.create(container.id, file=("b.txt", b"x")))
    expect_404(lambda: b.containers.files.retrieve(file.id, container_id=container.id))
    expect_404(lambda: b.containers.files.content.retrieve(file.id, container_id=container.id))
    expect_404(lambda: b.containers.files.delete(file.id, container_id=container.id))
    expect_404(
        lambda: b.responses.create(
            model="mock-model", input="x", tools=[{"type": "code_interpreter", "container": container.id}]
        )
    )
    expect_404(lambda: b.containers.delete(container.id))
    assert container.id not in [c.id for c in b.containers.list()]

    assert a.responses.retrieve(response.id).output_text == "You said: a's secret words"
    assert a.containers.files.content.retrieve(file.id, container_id=container.id).read() == b"a's file"
    assert len(a.conversations.items.list(conversation.id).data) == 1


def test_admin_api_manages_keys(secured: Gateway, mock: MockUpstream) -> None:
    assert httpx.post(f"{secured.base}/admin/keys", json={"tenant": "team-c"}).status_code == 401
    assert httpx.get(f"{secured.base}/admin/keys", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = httpx.post(f"{secured.base}/admin/keys", json={"tenant": "team-c"}, headers=admin).json()
    key = created["key"]
    client = secured.client(api_key=key)
    made = client.responses.create(model="mock-model", input="from c")
    expect_404(lambda: secured.client(api_key=KEY_A).responses.retrieve(made.id))
    listed = httpx.get(f"{secured.base}/admin/keys", headers=admin).json()["data"]
    assert [k["tenant"] for k in listed] == ["team-c"] and "key" not in listed[0] and key not in str(listed)
    assert httpx.delete(f"{secured.base}/admin/keys/{created['id']}", headers=admin).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client.responses.create(model="mock-model", input="revoked")


def test_quotas_answer_429_with_retry_after(secured: Gateway, mock: MockUpstream) -> None:
    limited = secured.client(api_key=KEY_LIMITED)
    limited.containers.create(name="one")
    with pytest.raises(openai.RateLimitError) as containers:
        limited.containers.create(name="two")
    assert int(containers.value.response.headers["retry-after"]) >= 1
    limited.responses.create(model="mock-model", input="third request this minute")
    with pytest.raises(openai.RateLimitError) as requests:
        limited.responses.create(model="mock-model", input="one too many")
    assert int(requests.value.response.headers["retry-after"]) >= 1
    assert (
        secured.client(api_key=KEY_A).responses.create(model="mock-model", input="others unaffected").status
        == "completed"
    )


def test_caller_upstream_key_is_forwarded_only_when_allowed(mock: MockUpstream, tmp_path: Path) -> None:
    auth = AuthSettings(keys=[ApiKeySettings(tenant="t", key=KEY_A)])
    upstreams = [
        UpstreamSettings(url=mock.url, api_key="configured-key", forward_client_key=True, aliases={"fwd": "mock-model"})
    ]
    settings = Settings(sandbox=NO_SANDBOXES, data_dir=tmp_path, upstreams=upstreams, auth=auth)
    from corral.app import build_app
    from tests.support.servers import serve_in_thread

    with serve_in_thread(build_app(settings), ready_path="/health") as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY_A, max_retries=0)
        client.responses.create(model="fwd", input="x", extra_headers={"X-Upstream-Api-Key": "caller-own-key"})
        assert mock.requests()[-1]["headers"]["authorization"] == "Bearer caller-own-key"
        client.responses.create(model="fwd", input="x")
        assert mock.requests()[-1]["headers"]["authorization"] == "Bearer configured-key"


def test_no_secret_reaches_the_logs_or_the_database(
    secured: Gateway, mock: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    a = secured.client(api_key=KEY_A)
    a.responses.create(model="mock-model", input="logged?")
    with pytest.raises(openai.AuthenticationError):
        secured.client(api_key=KEY_B + "x").responses.create(model="mock-model", input="x")
    httpx.get(f"{secured.base}/admin/keys", headers={"Authorization": f"Bearer {ADMIN}"})
    text = caplog.text
    for secret in SECRETS:
        assert secret not in text
    database = Path(secured.settings.database_url().removeprefix("sqlite:///"))
    raw = database.read_bytes() + (
        database.with_name(database.name + "-wal").read_bytes()
        if database.with_name(database.name + "-wal").exists()
        else b""
    )
    for secret in SECRETS:
        assert secret.encode() not in raw
