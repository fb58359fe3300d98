"""Gateways for the Files API tests: two tenants and a small file quota, on SQLite (file bytes on
local disk) and on PostgreSQL (file bytes in the database)."""

from collections.abc import Iterator

import pytest

from corral.config import ApiKeySettings, AuthSettings, QuotaSettings
from tests.conftest import Gateway, gateway_on
from tests.support.mock import MockUpstream

KEY_A = "sk-files-a-0123456789"
KEY_B = "sk-files-b-9876543210"
KEY_SMALL = "sk-files-small-5555"


def file_auth() -> AuthSettings:
    return AuthSettings(
        keys=[
            ApiKeySettings(tenant="team-a", key=KEY_A),
            ApiKeySettings(tenant="team-b", key=KEY_B),
            ApiKeySettings(tenant="small", key=KEY_SMALL),
        ],
        tenant_quotas={"small": QuotaSettings(file_storage_mb=1)},
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def files_gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with gateway_on(
        request.param, mock_upstream, tmp_path_factory.mktemp(f"files-{request.param}"), auth=file_auth()
    ) as gateway:
        yield gateway
