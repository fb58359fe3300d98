"""Starting the demo MCP server for a test session."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.servers import free_port

DEMO = Path(__file__).with_name("demo_server.py")


def stdio_command() -> tuple[str, list[str]]:
    return sys.executable, [str(DEMO), "--transport", "stdio"]


@contextmanager
def demo_server(transport: str) -> Iterator[str]:
    """Yields the server's URL (`…/mcp` for streamable HTTP, `…/sse` for SSE)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(DEMO), "--transport", transport, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with httpx.Client(timeout=1) as client:
                    client.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the demo MCP server ({transport}) did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
