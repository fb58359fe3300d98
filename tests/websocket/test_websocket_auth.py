"""The WebSocket upgrade is authenticated as HTTP is: the bearer key picks the tenant, a missing
or wrong key gets the 401 envelope at the handshake, tenants stay apart, and quotas count each
response on a connection."""

from collections.abc import Iterator

import orjson
import pytest
from websockets.exceptions import InvalidStatus

from corral.config import ApiKeySettings, AuthSettings, QuotaSettings
from tests.conftest import Gateway, start_gateway
from tests.support.mock import MockUpstream

KEY_A = "sk-ws-tenant-a-0123456789"
KEY_B = "sk-ws-tenant-b-9876543210"
KEY_LIMITED = "sk-ws-limited-5555"


@pytest.fixture(scope="module")
def secured(mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    auth = AuthSettings(
        keys=[
            ApiKeySettings(tenant="team-a", key=KEY_A),
            ApiKeySettings(tenant="team-b", key=KEY_B),
            ApiKeySettings(tenant="limited", key=KEY_LIMITED),
        ],
        tenant_quotas={"limited": QuotaSettings(requests_per_minute=2)},
    )
    with start_gateway(mock_upstream, tmp_path_factory.mktemp("ws-auth"), auth=auth) as gateway:
        yield gateway


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_a_missing_or_wrong_key_is_refused_at_the_handshake(
    secured: Gateway, mock: MockUpstream, key: str | None
) -> None:
    client = secured.client(api_key=key or "unused")
    if key is None:
        client.api_key = ""
    with pytest.raises(InvalidStatus) as refused, client.responses.connect():
        pass
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"
    assert mock.requests() == []


def test_tenants_are_kept_apart(secured: Gateway, mock: MockUpstream) -> None:
    with secured.client(api_key=KEY_A).responses.connect() as connection:
        connection.response.create(model="mock-model", input="team a's secret")
        created = next(event for event in connection if event.type == "response.completed").response
    assert secured.client(api_key=KEY_A).responses.retrieve(created.id).id == created.id
    with secured.client(api_key=KEY_B).responses.connect() as connection:
        connection.response.create(model="mock-model", input="x", previous_response_id=created.id)
        refused = next(iter(connection))
    assert refused.type == "error" and refused.error.code == "previous_response_not_found"


def test_quotas_count_each_response(secured: Gateway, mock: MockUpstream) -> None:
    kinds = []
    with secured.client(api_key=KEY_LIMITED).responses.connect() as connection:
        for _ in range(3):
            connection.response.create(model="mock-model", input="x")
            for event in connection:
                if event.type in ("response.completed", "error"):
                    kinds.append((event.type, getattr(event, "status", None)))
                    break
    assert kinds == [("response.completed", None), ("response.completed", None), ("error", 429)]
