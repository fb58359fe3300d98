"""Starting the demo MCP server (`demo_server.py`) for tests.

Pytest fixtures (session-scoped; import them into a conftest, or list this module in the root
conftest's `pytest_plugins`):

* `demo_mcp_url` — streamable HTTP, yields `http://127.0.0.1:<port>/mcp`
* `demo_mcp_sse_url` — SSE, yields `http://127.0.0.1:<port>/sse`
* `demo_mcp_auth_url` — streamable HTTP that answers 401 unless `Authorization: Bearer DEMO_TOKEN`
* `demo_mcp_stdio` — `(command, args)` that start the server over stdio

Plain helpers: `demo_server(transport, token=None)` (a context manager yielding the URL),
`stdio_command()`, `server_stats(url)` (how many `tools/list` the server answered).
"""

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.servers import free_port

DEMO = Path(__file__).with_name("demo_server.py")
DEMO_TOKEN = "demo-secret-token-0123456789"
START_TIMEOUT_S = 30.0


def stdio_command() -> tuple[str, list[str]]:
    """The command and arguments that run the demo server over stdio."""
    return sys.executable, [str(DEMO), "--transport", "stdio"]


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def server_stats(url: str) -> dict[str, int]:
    """The server's counters (`{"list_tools": n}`), read over plain HTTP (not MCP)."""
    return dict(httpx.get(f"{_base(url)}/stats", timeout=5).json())


@contextmanager
def demo_server(transport: str, *, token: str | None = None) -> Iterator[str]:
    """Run the demo server (`streamable-http` or `sse`) on a free loopback port until the block ends.

    Yields the MCP endpoint URL (`…/mcp` for streamable HTTP, `…/sse` for SSE) once `/health` answers.
    """
    port = free_port()
    command = [sys.executable, str(DEMO), "--transport", transport, "--port", str(port)]
    if token:
        command += ["--token", token]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(process, f"{base}/health", stderr)
            yield f"{base}/{'sse' if transport == 'sse' else 'mcp'}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_ready(process: subprocess.Popen[bytes], health: str, stderr: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the demo MCP server did not start ({health}):\n{tail}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def demo_mcp_url() -> Iterator[str]:
    with demo_server("streamable-http") as url:
        yield url


@pytest.fixture(scope="session")
def demo_mcp_sse_url() -> Iterator[str]:
    with demo_server("sse") as url:
        yield url


@pytest.fixture(scope="session")
def demo_mcp_auth_url() -> Iterator[str]:
    with demo_server("streamable-http", token=DEMO_TOKEN) as url:
        yield url


@pytest.fixture(scope="session")
def demo_mcp_stdio() -> tuple[str, list[str]]:
    return stdio_command()
