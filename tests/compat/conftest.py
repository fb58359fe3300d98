from collections.abc import Iterator

import pytest

from tests.mcp_servers.fixtures import demo_server


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    with demo_server("streamable-http") as url:
        yield url
