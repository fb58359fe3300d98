"""Fixtures for the MCP tool layer's tests: the demo MCP server over every transport."""

from collections.abc import Iterator

import pytest

from corral.tools.mcp_client import tool_cache
from tests.mcp_servers.fixtures import (
    demo_mcp_auth_url,
    demo_mcp_sse_url,
    demo_mcp_stdio,
    demo_mcp_url,
)

__all__ = ["demo_mcp_auth_url", "demo_mcp_sse_url", "demo_mcp_stdio", "demo_mcp_url"]


@pytest.fixture(autouse=True)
def empty_tool_cache() -> Iterator[None]:
    tool_cache.clear()
    yield
    tool_cache.clear()
