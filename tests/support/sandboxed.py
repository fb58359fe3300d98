"""A gateway with real sandboxes, in this process (`local`) or on a `corral sandbox-host` process
that it reaches over the internal API (`remote`, on a fresh PostgreSQL database)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import Gateway, start_gateway
from tests.fixtures.databases import fresh_postgres_url
from tests.fixtures.sandboxes import sandbox_settings
from tests.support.mock import MockUpstream
from tests.support.processes import CorralProcess, corral_processes

SANDBOX_KINDS = ("local", "remote")


@contextmanager
def sandboxed_gateway(
    kind: str, mock: MockUpstream, sandbox_python: str, root: Path, *, api: str = "responses"
) -> Iterator[Gateway]:
    settings = sandbox_settings(sandbox_python)
    if kind == "local":
        with start_gateway(mock, root, api=api, sandbox=settings) as gateway:
            yield gateway
        return
    with fresh_postgres_url() as url, corral_processes(root) as started:
        started.append(
            CorralProcess("sandbox-host", root / "host", {"database": url, "sandbox": settings.model_dump()})
        )
        remote = settings.model_copy(update={"backend": "hosts"})
        with start_gateway(mock, root / "gateway", api=api, sandbox=remote, database=url) as gateway:
            yield gateway
