"""Builds the ASGI app: wires the store, upstreams, tools and sandboxes to the routes."""

import asyncio
import gc
import importlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from corral.api import (
    admin,
    containers,
    conversations,
    files,
    passthrough,
    responses,
    sandbox_host,
    skills,
    system,
    uploads,
)
from corral.api.auth import KeyRing
from corral.api.edge import EdgeMiddleware
from corral.api.errors import handle_error
from corral.api.quotas import QuotaGate
from corral.api.request_ids import configure_logging
from corral.api.streaming import drain_detached
from corral.config import Settings
from corral.operator.banner import startup_banner
from corral.protocol.errors import CorralError
from corral.responses.background import BackgroundRunner
from corral.responses.input_tokens import warm_local_tokenizer
from corral.responses.service import ResponsesService
from corral.responses.toolset import ToolRegistry
from corral.sandbox_app import hosted, start_hosts, start_local_backend
from corral.serving import uvicorn_options
from corral.sessions.container_bootstrapper import ContainerBootstrapper
from corral.sessions.containers import ContainerService
from corral.sessions.files import FileService
from corral.sessions.hosts import SandboxHosts
from corral.sessions.skills import SkillService
from corral.sessions.stateful_tools import NoopBootstrapper, load_bootstrapper
from corral.storage import Store
from corral.storage.blobs import BlobStore, LocalBlobs
from corral.upstream.client import new_http_session
from corral.upstream.registry import UpstreamRegistry

log = logging.getLogger("corral")
SHUTDOWN_DRAIN_S = 30.0
MULTIPART_OVERHEAD = 1024 * 1024


def build_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.database_url()
        store = await Store.open(url, migrate=settings.auto_migrate or url.startswith("sqlite"))
        routing = settings.routing
        http = new_http_session(
            connect_s=routing.connect_timeout_s, read_s=routing.read_timeout_s, total_s=routing.total_timeout_s
        )
        registry = UpstreamRegistry(http, settings.upstreams, routing)
        await registry.discover()
        health = (
            registry.start_health_checks(routing.health_check_interval_s)
            if routing.health_check_interval_s
            else None
        )
        keyring = KeyRing(settings.auth, store)
        quotas = QuotaGate(settings.auth)
        if not keyring.enabled:
            log.warning("authentication is off: every caller is the one open tenant; serve on localhost only")
        container_service, app.state.sandbox_host = await start_containers(settings, store, quotas)
        file_service = start_files(settings, store, quotas)
        skill_service = SkillService(store, file_blobs(settings, store))
        bootstrapper = load_bootstrapper(
            settings.bootstrapper,
            {
                "noop": NoopBootstrapper,
                "default": (lambda: ContainerBootstrapper(container_service, file_service, skill_service))
                if container_service
                else NoopBootstrapper,
            },
        )
        app.state.store = store
        app.state.keyring = keyring
        app.state.quotas = quotas
        app.state.registry = registry
        app.state.containers = container_service
        app.state.files = file_service
        app.state.skills = skill_service
        app.state.responses = ResponsesService(
            store=store,
            registry=registry,
            bootstrapper=bootstrapper,
            tools=ToolRegistry(
                containers=container_service, mcp_servers=settings.mcp_servers, mcp_timeout_s=settings.mcp_timeout_s
            ),
            max_tool_calls=settings.max_tool_calls,
            files=file_service,
        )
        app.state.background = BackgroundRunner(app.state.responses, store, lease_s=settings.background_lease_s)
        app.state.background.start()
        app.state.max_body_bytes = settings.max_body_bytes
        app.state.websocket_max_age_s = settings.websocket_max_age_s
        app.state.max_upload_body_bytes = settings.max_file_bytes + MULTIPART_OVERHEAD
        await asyncio.to_thread(warm_up)
        freeze_startup_heap()
        app.state.ready = True
        log.info("%s", startup_banner(settings, app.state))
        try:
            yield
        finally:
            app.state.ready = False
            if health is not None:
                health.cancel()
            await drain_detached(SHUTDOWN_DRAIN_S)
            await app.state.background.shutdown()
            await file_service.aclose()
            if container_service is not None:
                await container_service.aclose()
            await http.close()
            await store.close()

    return Starlette(
        routes=[
            *system.routes,
            *responses.routes,
            *conversations.routes,
            *containers.routes,
            *files.routes,
            *uploads.routes,
            *skills.routes,
            *passthrough.routes,
            *admin.routes,
            *sandbox_host.routes,
        ],
        middleware=[Middleware(EdgeMiddleware)],
        exception_handlers={CorralError: handle_error, HTTPException: handle_error},
        lifespan=lifespan,
    )


async def start_containers(
    settings: Settings, store: Store, quotas: QuotaGate
) -> tuple[ContainerService | None, SandboxHosts | None]:
    """The container service on this host's sandboxes and the sandbox hosts of the shared database,
    and what this process serves to the other replicas; (None, None) where there are none."""
    local = await start_local_backend(settings) if settings.sandbox.backend == "local" else None
    hosts = await start_hosts(settings, store, local)
    if hosts is None:
        return None, None
    service = ContainerService(
        store,
        hosts,
        default_expiry_minutes=settings.sandbox.default_expiry_minutes,
        execution_timeout_s=settings.sandbox.execution_timeout_s,
        limits_for=quotas.limits,
        default_live_containers=settings.default_live_containers(),
        evict_idle_after_s=settings.sandbox.evict_idle_after_s,
    )
    service.start_sweeper()
    return service, hosted(hosts)


def file_blobs(settings: Settings, store: Store) -> BlobStore:
    """Where the Files API keeps bytes: on local disk under the data dir for the embedded default
    (SQLite: one process owns everything), in the shared database otherwise (every replica sees them)."""
    if settings.database_url().startswith("sqlite"):
        return LocalBlobs(settings.data_dir / "files")
    return store.blobs


def start_files(settings: Settings, store: Store, quotas: QuotaGate) -> FileService:
    service = FileService(
        store, file_blobs(settings, store), max_file_bytes=settings.max_file_bytes, limits_for=quotas.limits
    )
    service.start_sweeper()
    return service


def warm_up() -> None:
    """Build at start what the first request would otherwise pay for: the local tokenizer's
    vocabulary (about 0.3 s) and anyio's asyncio backend (imported by the first streamed response)."""
    importlib.import_module("anyio._backends._asyncio")
    warm_local_tokenizer()


def freeze_startup_heap() -> None:
    """Take what start-up built (modules, pydantic schemas, the tokenizer, SQLAlchemy metadata:
    a couple of hundred thousand objects) out of the cyclic collector's sight.

    Requests make no reference cycles of their own on the hot path, but each full collection
    still walked every live object: unfrozen, that walk was the p99 tail under load.
    """
    gc.collect()
    gc.freeze()


WORKER_SETTINGS_ENV = "CORRAL_WORKER_SETTINGS_FILE"


def check_workers(settings: Settings) -> None:
    """Refuse what several gateway processes on one port cannot share.

    A local sandbox backend belongs to one process: several would each reap the others' sandboxes
    in the one data dir as leftovers, and each would advertise the one shared port as its sandbox
    API, where any worker may answer. With workers, containers run on sandbox hosts
    (`corral sandbox-host`, PostgreSQL), or not at all.
    """
    if settings.workers < 1:
        raise SystemExit("--workers must be at least 1")
    if settings.workers > 1 and settings.sandbox.backend == "local":
        raise SystemExit(
            f"--workers {settings.workers}: the local sandbox backend runs in one process only. Set "
            "sandbox.backend: hosts (PostgreSQL, with `corral sandbox-host` processes) or none (no containers)."
        )


def worker_app() -> Starlette:
    """One worker process's app, from the settings its parent wrote (`serve` with workers)."""
    settings = Settings.model_validate_json(Path(os.environ[WORKER_SETTINGS_ENV]).read_bytes())
    configure_logging(settings.log_level)
    return build_app(settings)


def serve(settings: Settings) -> None:
    import uvicorn

    configure_logging(settings.log_level)
    check_workers(settings)
    if settings.workers > 1:
        _serve_workers(settings)
        return
    uvicorn.run(build_app(settings), **uvicorn_options(settings))


def _serve_workers(settings: Settings) -> None:
    """uvicorn's supervisor: the parent binds the port, each worker (a fresh interpreter) accepts
    on it. Migrations run once here, before any worker opens the database. The settings reach
    the workers through a file only this user can read, not the environment or argv, since
    they can hold upstream keys."""
    import uvicorn

    from corral.storage import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.database_url()
    if settings.auto_migrate or url.startswith("sqlite"):
        asyncio.run(upgrade(url))
    with tempfile.TemporaryDirectory(prefix="corral-workers-") as private:
        path = Path(private) / "settings.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(settings.model_dump_json().encode())
        os.environ[WORKER_SETTINGS_ENV] = str(path)
        uvicorn.run("corral.app:worker_app", factory=True, workers=settings.workers, **uvicorn_options(settings))
