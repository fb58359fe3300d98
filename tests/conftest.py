"""Shared fixtures: the scripted upstream and real gateways in front of it, played by the openai SDK."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from corral.app import build_app
from corral.config import SandboxSettings, Settings, UpstreamSettings
from corral.mock_upstream.app import build_app as build_mock_app
from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream
from tests.support.processes import unmount_under
from tests.support.servers import serve_in_thread

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.sandboxes"]

UPSTREAM_APIS = ("responses", "chat")
NO_SANDBOXES = SandboxSettings(backend="none")
"""For gateways of tests that use no container: no bubblewrap, no warm kernel, no disk."""


@dataclass
class Gateway:
    base: str
    settings: Settings
    mock: MockUpstream
    app: Any

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key=kwargs.pop("api_key", "test-key"), max_retries=0, **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key=kwargs.pop("api_key", "test-key"), max_retries=0, **kwargs)


@contextmanager
def start_gateway(mock: MockUpstream, data_dir: Path, *, api: str = "responses", **settings: Any) -> Iterator[Gateway]:
    """A gateway in this process; it runs sandboxes only when the test passes `sandbox=` settings."""
    settings.setdefault("sandbox", NO_SANDBOXES)
    config = Settings(
        data_dir=data_dir,
        upstreams=[UpstreamSettings(url=mock.url, api=api)],  # type: ignore[arg-type]
        **settings,
    )
    app = build_app(config)
    with serve_in_thread(app, ready_path="/health") as base:
        yield Gateway(base, config, mock, app)


@contextmanager
def gateway_on(database: str, mock: MockUpstream, data_dir: Path, **settings: Any) -> Iterator[Gateway]:
    """`start_gateway` on SQLite (`"sqlite"`) or on a fresh PostgreSQL database (`"postgres"`)."""
    if database == "sqlite":
        with start_gateway(mock, data_dir, **settings) as gateway:
            yield gateway
        return
    with fresh_postgres_url() as url, start_gateway(mock, data_dir, database=url, **settings) as gateway:
        yield gateway


@pytest.fixture(scope="session", autouse=True)
def no_mounts_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Container disks that a test's gateway left mounted (a killed process, a test that failed
    mid-way) are unmounted at the end, so pytest can delete its temporary directories."""
    yield
    unmount_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockUpstream]:
    with serve_in_thread(build_mock_app(), ready_path="/v1/models") as base:
        yield MockUpstream(base)


@pytest.fixture()
def mock(mock_upstream: MockUpstream) -> MockUpstream:
    mock_upstream.clear()
    return mock_upstream


@pytest.fixture(scope="session", params=UPSTREAM_APIS)
def gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway on SQLite, once in front of each upstream API kind."""
    with start_gateway(mock_upstream, tmp_path_factory.mktemp(f"gw-{request.param}"), api=request.param) as gw:
        yield gw


@pytest.fixture()
def client(gateway: Gateway, mock: MockUpstream) -> openai.OpenAI:
    return gateway.client()
