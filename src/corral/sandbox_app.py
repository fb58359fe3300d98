"""The sandbox side of a process: its local backend, the directory of sandbox hosts, and the
`corral sandbox-host` server (the local backend served to gateways, nothing else)."""

import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from corral.api import sandbox_host
from corral.config import Settings
from corral.serving import uvicorn_options
from corral.sessions.backends.base import SandboxBackend, SandboxUnavailableError
from corral.sessions.hosts import SandboxHosts, host_id_for
from corral.storage import Store

log = logging.getLogger("corral")


def default_sandbox_python() -> str:
    """The sandbox environment `scripts/setup-sandbox.sh` makes, else this interpreter."""
    candidate = Path(__file__).resolve().parents[2] / ".sandbox-venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


async def start_local_backend(settings: Settings) -> SandboxBackend | None:
    """This host's bubblewrap backend, or None where it cannot run (logged)."""
    try:
        from corral.sessions.backends.local import LocalSandboxBackend
    except ImportError:
        log.warning("no local sandbox backend is installed: code_interpreter and shell are unavailable")
        return None
    sandbox = settings.sandbox
    try:
        backend = LocalSandboxBackend(
            settings.data_dir,
            python=sandbox.python or default_sandbox_python(),
            warm_pool_size=sandbox.warm_pool_size,
            max_containers=sandbox.max_containers,
            output_limit=sandbox.output_limit,
            pids_limit=sandbox.pids_limit,
            disk_mb=sandbox.disk_mb,
            disk_reserve_mb=sandbox.disk_reserve_mb,
        )
        await backend.start()
    except SandboxUnavailableError as exc:
        log.warning("sandboxes unavailable on this host (%s): code_interpreter and shell are disabled", exc)
        return None
    return backend


def advertise_url(settings: Settings) -> str | None:
    """Where other processes reach this one's sandboxes: set, or derived from the listening address
    when the database is shared; None on SQLite (one process, nothing to announce)."""
    if settings.sandbox.advertise_url:
        return settings.sandbox.advertise_url
    if settings.database_url().startswith("sqlite"):
        return None
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"http://{host}:{settings.port}"


async def start_hosts(settings: Settings, store: Store, local: SandboxBackend | None) -> SandboxHosts | None:
    """The directory of hosts this process places containers on; None when it has none at all."""
    if settings.sandbox.backend == "none" or (local is None and settings.sandbox.backend != "hosts"):
        return None
    hosts = SandboxHosts(
        store,
        local=local,
        host_id=host_id_for(settings.data_dir),
        advertise_url=advertise_url(settings) if local is not None else None,
        capacity=settings.sandbox.max_containers,
        secret=settings.sandbox.host_secret,
        ttl_s=settings.sandbox.host_ttl_s,
    )
    await hosts.start()
    return hosts


def hosted(hosts: SandboxHosts | None) -> SandboxHosts | None:
    """What this process serves on the internal sandbox API, if anything."""
    return hosts if hosts is not None and hosts.serving else None


def build_sandbox_host_app(settings: Settings) -> Starlette:
    """`corral sandbox-host`: this host's sandboxes for the gateways on the same database."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.database_url()
        if url.startswith("sqlite"):
            raise SystemExit("corral sandbox-host needs the database the gateways share (--database postgresql://…)")
        store = await Store.open(url, migrate=settings.auto_migrate)
        local = await start_local_backend(settings)
        if local is None:
            raise SystemExit("corral sandbox-host: this host cannot run sandboxes (see the log)")
        hosts = await start_hosts(settings, store, local)
        assert hosts is not None
        app.state.sandbox_host = hosted(hosts)
        log.info("sandbox host %s serving at %s", hosts.host_id, hosts.advertise_url)
        try:
            yield
        finally:
            await hosts.aclose()
            await store.close()

    async def health(_request: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/health", health), *sandbox_host.routes], lifespan=lifespan)


def serve_sandbox_host(settings: Settings) -> None:
    import uvicorn

    from corral.api.request_ids import configure_logging

    configure_logging(settings.log_level)
    uvicorn.run(build_sandbox_host_app(settings), log_config=None, **uvicorn_options(settings))
