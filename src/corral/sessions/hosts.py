"""Where containers run: this process's local backend, and the sandbox hosts other processes
announce in the shared database.

A process with a local backend on a shared (PostgreSQL) database announces it as a sandbox host
and heartbeats, so the replicas of the scale-out deployment serve each other's containers with no
setting of their own; `corral sandbox-host` does the same without a gateway around it; a gateway
with `sandbox.backend: hosts` runs no sandbox itself. On SQLite (one process) the local backend
serves everything and nothing is announced.
"""

import asyncio
import logging
import secrets
import time
from pathlib import Path

import aiohttp

from corral.periodic import every
from corral.sessions.backends.base import SandboxBackend, SandboxCapacityError, SandboxUnavailableError
from corral.sessions.backends.remote import RemoteSandboxBackend
from corral.storage import Store
from corral.storage.sandbox_hosts import HostRecord

log = logging.getLogger(__name__)

HOST_ID_FILE = "sandbox-host-id"


def host_id_for(data_dir: Path) -> str:
    """This data directory's host id, made once and kept: the containers on its disk are its own."""
    path = data_dir / HOST_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        host_id = f"host_{secrets.token_hex(8)}"
        path.write_text(host_id)
        return host_id


class SandboxHosts:
    def __init__(
        self,
        store: Store,
        *,
        local: SandboxBackend | None,
        host_id: str,
        advertise_url: str | None,
        capacity: int,
        secret: str | None = None,
        ttl_s: float = 15.0,
    ) -> None:
        self.store = store
        self.local = local
        self.host_id = host_id
        self.advertise_url = advertise_url
        self.capacity = capacity
        self.secret = secret
        self.ttl_s = ttl_s
        self.http: aiohttp.ClientSession | None = None
        self._remotes: dict[str, RemoteSandboxBackend] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether containers may run in other processes (and files must outlive their host)."""
        return self.advertise_url is not None or self.local is None

    @property
    def serving(self) -> bool:
        """Whether this process serves its sandboxes to the others."""
        return self.local is not None and self.advertise_url is not None

    async def start(self) -> None:
        """Join the shared database's hosts. A database that takes no writes now does not stop the
        gateway: the heartbeat keeps trying, and readiness reports the database."""
        if not self.shared:
            return
        self.http = aiohttp.ClientSession()
        try:
            await self.release_moved(at_start=True)
            await self._join()
        except Exception:
            log.exception("could not join the sandbox hosts yet; retrying with the heartbeat")
        if self.serving:
            self._heartbeat = every(self.ttl_s / 3, self._beat, what="sandbox host heartbeat")

    async def _join(self) -> None:
        if self.secret is None:
            self.secret = await self.store.sandbox_hosts.secret()
        if self.serving:
            await self._announce()

    async def _beat(self) -> None:
        await self._join()
        await self.release_moved(at_start=False)

    async def release_moved(self, *, at_start: bool) -> list[str]:
        """Delete what this host keeps for containers that are no longer its own: moved to another
        live host while this one was unreachable (their files went with them), or deleted meanwhile.
        At start, before this host is announced, also what no record names (a creation that failed
        half-way); later such a directory may be a creation in flight, so it is left alone. A
        container recorded on a host that is not live may be moving here: it is left alone too."""
        held = getattr(self.local, "held", None)
        if self.local is None or not self.serving or held is None:
            return []
        mine = await held()
        if not mine:
            return []
        locations = await self.store.containers.locations(mine)
        live = {host.id for host in await self.store.sandbox_hosts.live(ttl_s=self.ttl_s)}
        released = []
        for container_id in mine:
            if container_id not in locations:
                gone = at_start
            else:
                location = locations[container_id]
                gone = location != self.host_id and location in live
            if gone:
                await self.local.destroy(container_id)
                released.append(container_id)
        if released:
            log.warning("released %d containers that are no longer this host's: %s", len(released), released)
        return released

    def running(self) -> int:
        sandboxes = getattr(self.local, "sandboxes", None)
        return len(sandboxes) if sandboxes is not None else 0

    async def _announce(self) -> None:
        assert self.advertise_url is not None
        await self.store.sandbox_hosts.announce(
            self.host_id, self.advertise_url, capacity=self.capacity, containers=self.running()
        )

    def _remote(self, host: HostRecord) -> RemoteSandboxBackend:
        client = self._remotes.get(host.id)
        if client is None or client.url != host.url.rstrip("/"):
            if self.secret is None:
                raise SandboxUnavailableError("The sandbox hosts' secret could not be read from the database yet.")
            assert self.http is not None
            client = self._remotes[host.id] = RemoteSandboxBackend(host.id, host.url, self.secret, self.http)
        return client

    async def place(self) -> tuple[str, SandboxBackend]:
        """A host with room for a new container: this process's own when it has room, else the live
        host with the most room."""
        if self.local is not None and (not self.shared or self.running() < self.capacity):
            return self.host_id, self.local
        hosts = await self.store.sandbox_hosts.live(ttl_s=self.ttl_s)
        candidates = [host for host in hosts if host.id != self.host_id and host.containers < host.capacity]
        if not candidates:
            if not hosts and self.local is None:
                raise SandboxUnavailableError("No sandbox host is running.")
            raise SandboxCapacityError("Every sandbox host runs its maximum of containers; try again later.")
        best = max(candidates, key=lambda host: host.capacity - host.containers)
        return best.id, self._remote(best)

    async def backend_for(self, location: str | None) -> SandboxBackend | None:
        """The backend a container runs on, or None when its host is gone (it must be placed again)."""
        if not self.shared or location == self.host_id:
            return self.local
        if location is None:
            return None
        host = await self.store.sandbox_hosts.get(location)
        if host is None or host.heartbeat_at < time.time() - self.ttl_s:
            return None
        return self._remote(host)

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
            try:
                await self.store.sandbox_hosts.withdraw(self.host_id)
            except Exception:
                log.exception("could not withdraw this sandbox host")
        if self.local is not None:
            await self.local.aclose()
        if self.http is not None:
            await self.http.close()
