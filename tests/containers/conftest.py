"""Gateways with real bubblewrap sandboxes."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UPSTREAM_APIS, Gateway, start_gateway
from tests.fixtures.sandboxes import sandbox_settings
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", params=UPSTREAM_APIS)
def sandboxed(
    request: pytest.FixtureRequest,
    mock_upstream: MockUpstream,
    sandbox_python: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    with start_gateway(
        mock_upstream, tmp_path_factory.mktemp("sandboxed"), api=request.param, sandbox=sandbox_settings(sandbox_python)
    ) as gateway:
        yield gateway


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
