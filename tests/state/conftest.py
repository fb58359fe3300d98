"""State tests run against both databases, through gateways on each upstream API kind."""

from collections.abc import Iterator

import pytest

from tests.conftest import UPSTREAM_APIS, Gateway, start_gateway
from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream


@pytest.fixture(
    scope="module",
    params=[(db, api) for db in ("sqlite", "postgres") for api in UPSTREAM_APIS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def stateful(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    db, api = request.param
    data_dir = tmp_path_factory.mktemp(f"state-{db}-{api}")
    if db == "postgres":
        with fresh_postgres_url() as url:
            with start_gateway(mock_upstream, data_dir, api=api, database=url) as gateway:
                yield gateway
    else:
        with start_gateway(mock_upstream, data_dir, api=api) as gateway:
            yield gateway
