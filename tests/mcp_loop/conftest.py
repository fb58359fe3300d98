from collections.abc import Iterator

import pytest

from corral.config import McpServerSettings
from tests.conftest import UPSTREAM_APIS, Gateway, start_gateway
from tests.mcp_servers.fixtures import demo_server, stdio_command
from tests.support.mock import MockUpstream


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    with demo_server("streamable-http") as url:
        yield url


@pytest.fixture(scope="session")
def mcp_sse_url() -> Iterator[str]:
    with demo_server("sse") as url:
        yield url


@pytest.fixture(scope="module", params=UPSTREAM_APIS)
def mcp_gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    command, args = stdio_command()
    servers = {"local-demo": McpServerSettings(transport="stdio", command=command, args=args)}
    with start_gateway(
        mock_upstream, tmp_path_factory.mktemp("mcp"), api=request.param, mcp_servers=servers, mcp_timeout_s=3
    ) as gateway:
        yield gateway
