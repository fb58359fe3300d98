"""A gateway on PostgreSQL keeps answering after the server cut every pooled connection (a
restart, a failover, an operator's `pg_terminate_backend`): no `pool_pre_ping`, yet the next
stored request, its chain and its retrieval succeed."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Gateway, start_gateway
from tests.fixtures.databases import _run, fresh_postgres_url, terminate_other_sessions
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.postgres


@pytest.fixture()
def gateway(mock: MockUpstream, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    with fresh_postgres_url() as url, start_gateway(mock, tmp_path, database=url) as gw:
        yield gw, url


def test_a_stored_request_after_the_server_cut_every_connection_succeeds(gateway: tuple[Gateway, str]) -> None:
    gw, url = gateway
    client = gw.client().with_options(max_retries=0)  # a 503 must not be hidden by a retry
    first = client.responses.create(model="mock-model", input="one")
    assert _run(terminate_other_sessions(url)) >= 1

    second = client.responses.create(model="mock-model", input="two", previous_response_id=first.id)

    assert second.status == "completed"
    assert client.responses.retrieve(second.id).id == second.id
    assert _run(terminate_other_sessions(url)) >= 1
    third = client.responses.create(model="mock-model", input="three", previous_response_id=second.id)
    items = client.responses.input_items.list(third.id)
    assert third.status == "completed" and len(items.data) == 1
