"""ContainerService on its own: a fake sandbox backend and fake host placement, a real SQLite store,
a hand-moved clock. No sandbox starts."""

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.errors import InvalidRequest, NotFound
from corral.sessions.backends.base import (
    FileContent,
    FileEntry,
    FileListing,
    PythonResult,
    SandboxCapacityError,
    SandboxUnavailableError,
    ShellResult,
)
from corral.sessions.containers import MOVED_NOTE, ContainerService
from corral.storage import Store


class FakeBackend:
    """Containers as dicts of files; `run_python` code `write NAME TEXT` writes a file."""

    name = "fake"

    def __init__(self, host_id: str, capacity: int = 10) -> None:
        self.host_id = host_id
        self.capacity = capacity
        self.files: dict[str, dict[str, bytes]] = {}
        self.running: set[str] = set()
        self.stopped: list[str] = []

    async def create(self, container_id: str, *, memory_limit: str = "1g") -> str:
        if len(self.running) >= self.capacity:
            raise SandboxCapacityError("full")
        self.files[container_id] = {}
        self.running.add(container_id)
        return self.host_id

    async def ensure_running(self, container_id: str, *, memory_limit: str = "1g") -> None:
        self.files.setdefault(container_id, {})
        self.running.add(container_id)

    async def is_running(self, container_id: str) -> bool:
        return container_id in self.running

    async def run_python(self, container_id: str, code: str, *, timeout_s: float) -> PythonResult:
        _, name, text = code.split(" ", 2)
        self.files[container_id][name] = text.encode()
        return PythonResult(stdout="ok\n")

    async def run_shell(
        self, container_id: str, command: str, *, timeout_s: float, max_output_length: int | None = None
    ) -> ShellResult:
        return ShellResult(stdout=command, exit_code=0)

    async def list_files(self, container_id: str) -> FileListing:
        files = self.files.get(container_id, {})
        return FileListing([FileEntry(path, len(data), len(data)) for path, data in sorted(files.items())])

    async def read_file(self, container_id: str, path: str) -> FileContent:
        data = self.files.get(container_id, {}).get(path)
        if data is None:
            raise FileNotFoundError(path)
        return FileContent(len(data), _once(data))

    async def write_file(self, container_id: str, path: str, chunks: AsyncIterable[bytes]) -> int:
        data = b"".join([chunk async for chunk in chunks])
        self.files.setdefault(container_id, {})[path] = data
        return len(data)

    async def delete_file(self, container_id: str, path: str) -> bool:
        return self.files.get(container_id, {}).pop(path, None) is not None

    async def stop(self, container_id: str) -> None:
        self.running.discard(container_id)
        self.stopped.append(container_id)

    async def destroy(self, container_id: str) -> None:
        self.running.discard(container_id)
        self.files.pop(container_id, None)

    async def aclose(self) -> None:
        pass


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class FakeHosts:
    """The placement SandboxHosts does, over fake backends; `lose` makes a host vanish."""

    def __init__(self, *backends: FakeBackend, shared: bool = True) -> None:
        self.backends = {backend.host_id: backend for backend in backends}
        self.shared = shared
        self.local = None if shared else backends[0]
        self.capacity = sum(backend.capacity for backend in backends)

    async def place(self) -> tuple[str, FakeBackend]:
        if not self.backends:
            raise SandboxUnavailableError("No sandbox host is running.")
        host_id, backend = min(self.backends.items(), key=lambda pair: len(pair[1].running))
        if len(backend.running) >= backend.capacity:
            raise SandboxCapacityError("Every sandbox host runs its maximum of containers; try again later.")
        return host_id, backend

    async def backend_for(self, location: str) -> FakeBackend | None:
        return self.backends.get(location)

    def running(self) -> int:
        return sum(len(backend.running) for backend in self.backends.values())

    def lose(self, host_id: str) -> FakeBackend:
        return self.backends.pop(host_id)

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'corral.db'}")
    yield opened
    await opened.close()


def service(store: Store, hosts: FakeHosts, clock: Clock, **options: object) -> ContainerService:
    return ContainerService(store, hosts, clock=clock, **options)  # type: ignore[arg-type]


async def test_a_container_is_placed_on_the_least_busy_host_and_its_record_says_where(store: Store) -> None:
    a, b = FakeBackend("host_a"), FakeBackend("host_b")
    containers = service(store, FakeHosts(a, b), Clock())
    first = await containers.create("t1", name="one")
    second = await containers.create("t1", name="two")
    assert {first["location"], second["location"]} == {"host_a", "host_b"}
    assert first["id"] in (a.running | b.running) and second["id"] in (a.running | b.running)
    assert first["status"] == "running" and first["memory_limit"] == "1g"


async def test_an_invalid_memory_limit_allocates_nothing(store: Store) -> None:
    backend = FakeBackend("host_a")
    containers = service(store, FakeHosts(backend), Clock())
    with pytest.raises(InvalidRequest) as caught:
        await containers.create("t1", name="x", memory_limit="3g")
    assert caught.value.param == "memory_limit"
    assert backend.running == set()


async def test_other_tenants_containers_are_not_found(store: Store) -> None:
    containers = service(store, FakeHosts(FakeBackend("host_a")), Clock())
    record = await containers.create("t1", name="mine")
    assert await containers.get("t2", record["id"]) is None
    with pytest.raises(NotFound):
        await containers.require_live("t2", record["id"])


async def test_a_container_whose_host_is_gone_comes_back_elsewhere_with_its_kept_files(store: Store) -> None:
    a, b = FakeBackend("host_a"), FakeBackend("host_b", capacity=0)
    hosts = FakeHosts(a, b)
    containers = service(store, hosts, Clock())
    record = await containers.create("t1", name="moving")
    assert record["location"] == "host_a"
    await containers.run_python("t1", record["id"], "write data.csv 1,2,3")
    hosts.lose("host_a")
    b.capacity = 1
    result, _ = await containers.run_python("t1", record["id"], "write more.txt x")
    assert result.stderr.startswith(MOVED_NOTE)
    assert b.files[record["id"]]["data.csv"] == b"1,2,3", "the kept file was restored on the new host"
    moved = await containers.get("t1", record["id"])
    assert moved is not None and moved["location"] == "host_b"
    again, _ = await containers.run_python("t1", record["id"], "write third.txt y")
    assert MOVED_NOTE not in again.stderr, "the move is told once"


async def test_files_the_code_writes_become_container_files_and_are_kept(store: Store) -> None:
    backend = FakeBackend("host_a")
    containers = service(store, FakeHosts(backend), Clock())
    record = await containers.create("t1", name="files")
    _, changed = await containers.run_python("t1", record["id"], "write report.txt hello")
    assert [(file["path"], file["bytes"], file["source"]) for file in changed] == [
        ("/mnt/data/report.txt", 5, "assistant")
    ]
    kept = await store.blobs.get(f"container/{record['id']}/report.txt")
    assert kept is not None and b"".join([chunk async for chunk in kept]) == b"hello"
    await containers.delete_file("t1", record["id"], changed[0]["id"])
    assert await store.blobs.get(f"container/{record['id']}/report.txt") is None
    assert "report.txt" not in backend.files[record["id"]]


async def test_files_are_not_kept_in_storage_when_one_process_runs_every_container(store: Store) -> None:
    containers = service(store, FakeHosts(FakeBackend("host_a"), shared=False), Clock())
    record = await containers.create("t1", name="local")
    await containers.run_python("t1", record["id"], "write a.txt 1")
    assert await store.blobs.get(f"container/{record['id']}/a.txt") is None


async def test_auto_reuses_the_latest_live_container_of_the_history_else_the_chains_else_a_new_one(
    store: Store,
) -> None:
    containers = service(store, FakeHosts(FakeBackend("host_a")), Clock())
    older = await containers.create("t1", name="older")
    newer = await containers.create("t1", name="newer")
    used = await containers.auto("t1", used=[newer["id"], older["id"]], chain_key=None, name="x", memory_limit=None)
    assert used == newer["id"]
    first = await containers.auto("t1", used=[], chain_key="conv_1", name="auto-conv_1", memory_limit=None)
    again = await containers.auto("t1", used=[], chain_key="conv_1", name="auto-conv_1", memory_limit=None)
    assert again == first, "the chain's container is found by name"
    other = await containers.auto("t1", used=["cntr_gone"], chain_key=None, name="fresh", memory_limit=None)
    assert other not in (first, older["id"], newer["id"])


async def test_an_idle_container_expires_keeps_its_files_and_is_never_revived(store: Store) -> None:
    backend = FakeBackend("host_a")
    clock = Clock()
    containers = service(store, FakeHosts(backend), clock)
    record = await containers.create("t1", name="idle", expires_after_minutes=1)
    await containers.run_python("t1", record["id"], "write keep.txt x")
    clock.now += 59
    assert (await containers.require_live("t1", record["id"]))["status"] == "running", "use refreshes it"
    clock.now += 61
    assert await containers.expire_due() == 1
    assert backend.stopped == [record["id"]]
    assert backend.files[record["id"]] == {"keep.txt": b"x"}
    expired = await containers.get("t1", record["id"])
    assert expired is not None and expired["status"] == "expired"
    with pytest.raises(InvalidRequest, match="Container is expired"):
        await containers.run_python("t1", record["id"], "write no.txt y")
    assert await containers.auto("t1", used=[record["id"]], chain_key=None, name="n", memory_limit=None) != record["id"]


async def test_a_full_pool_stops_the_tenants_own_idle_container_to_make_room(store: Store) -> None:
    backend = FakeBackend("host_a", capacity=1)
    clock = Clock()
    containers = service(store, FakeHosts(backend), clock, evict_idle_after_s=60)
    first = await containers.create("t1", name="first")
    with pytest.raises(SandboxCapacityError):
        await containers.create("t1", name="too soon")
    clock.now += 61
    second = await containers.create("t1", name="second")
    assert backend.running == {second["id"]}
    stopped = await containers.get("t1", first["id"])
    assert stopped is not None and stopped["status"] == "expired"
