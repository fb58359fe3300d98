"""The scale-out deployment as the user guide describes it, with real processes on the real
PostgreSQL: replicas that share one database, and sandbox hosts that any replica reaches.

Each test starts `corral serve` (and `corral sandbox-host`) processes with their own data
directories, plays the client with the openai SDK through all of them, and kills some with -9.
"""

import asyncio
import concurrent.futures
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest

from tests.fixtures.databases import fresh_postgres_url
from tests.fixtures.sandboxes import TEST_DISK_MB
from tests.support.mock import MockUpstream, call
from tests.support.processes import CorralProcess, corral_processes
from tests.support.skills import inline

pytestmark = [pytest.mark.sandbox, pytest.mark.postgres]

HOST_TTL_S = 3.0
AUTO_CI = {"type": "code_interpreter", "container": {"type": "auto"}}


def settings(database: str, mock: MockUpstream, sandbox_python: str, **sandbox: Any) -> dict[str, Any]:
    return {
        "database": database,
        "upstreams": [{"url": mock.url, "api": "responses"}],
        "sandbox": {
            "python": sandbox_python,
            "warm_pool_size": 0,
            "max_containers": 8,
            "execution_timeout_s": 30,
            "disk_mb": TEST_DISK_MB,
            "host_ttl_s": HOST_TTL_S,
            **sandbox,
        },
    }


@pytest.fixture()
def database() -> Iterator[str]:
    with fresh_postgres_url() as url:
        yield url


def python(client: openai.OpenAI, code: str, **request: Any) -> tuple[Any, str]:
    """The response and the logs of its code_interpreter call."""
    response = client.responses.create(
        model="mock-model",
        input=call("python", code=code),
        tools=[request.pop("tool", AUTO_CI)],
        include=["code_interpreter_call.outputs"],
        **request,
    )
    item = next(i for i in response.output if i.type == "code_interpreter_call")
    return response, "".join(o.logs for o in item.outputs or [] if o.type == "logs")


def container_of(response: Any) -> str:
    return next(i for i in response.output if i.type == "code_interpreter_call").container_id


def value_of(database: str, query: str, argument: str) -> Any:
    """One value read straight from the shared database, on a connection of its own."""

    async def read() -> Any:
        connection = await asyncpg.connect(database.replace("postgresql://", "postgres://", 1))
        try:
            return await connection.fetchval(query, argument)
        finally:
            await connection.close()

    return asyncio.run(read())


def location(database: str, container_id: str) -> str:
    return str(value_of(database, "select location from containers where id = $1", container_id))


def wait_until_silent(database: str, host_id: str) -> None:
    """Until the host's last heartbeat is older than the TTL (a state of the database, polled)."""

    def last_beat() -> float:
        return float(value_of(database, "select heartbeat_at from sandbox_hosts where id = $1", host_id))

    deadline = time.monotonic() + 60
    while time.time() - last_beat() <= HOST_TTL_S:
        assert time.monotonic() < deadline, "the killed host's heartbeat never went stale"
        time.sleep(0.2)


def test_replicas_on_one_database_share_containers(
    database: str, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> None:
    """Nothing but the shared database: each replica serves its own sandboxes to the others."""
    config = settings(database, mock_upstream, sandbox_python)
    with corral_processes(tmp_path) as started:
        a = CorralProcess("serve", tmp_path / "a", config)
        started.append(a)
        b = CorralProcess("serve", tmp_path / "b", config)
        started.append(b)

        first, _ = python(a.client(), "x = 5\nopen('/mnt/data/f.txt', 'w').write('made on A')")
        second, logs = python(b.client(), "print(x, open('/mnt/data/f.txt').read())", previous_response_id=first.id)
        assert logs.strip() == "5 made on A"
        assert container_of(second) == container_of(first)
        _, logs = python(a.client(), "x += 1\nprint(x)", previous_response_id=second.id)
        assert logs.strip() == "6"

        container = b.client().containers.create(name="shared")
        uploaded = a.client().containers.files.create(container.id, file=("data.csv", b"a,b\n1,2\n"))
        assert b.client().containers.files.content.retrieve(uploaded.id, container_id=container.id).read() == (
            b"a,b\n1,2\n"
        )
        _, logs = python(
            a.client(),
            "print(open('/mnt/data/data.csv').read().splitlines()[1])",
            tool={"type": "code_interpreter", "container": container.id},
        )
        assert logs.strip() == "1,2"

        conversation = a.client().conversations.create()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(python, replica.client(), "print('hi')", conversation=conversation.id)
                for replica in (a, b, a, b)
            ]
            containers = {container_of(future.result()[0]) for future in futures}
        assert len(containers) == 1, "concurrent auto requests on one conversation share one container"


def test_a_lost_sandbox_host_and_a_lost_replica_lose_nothing(
    database: str, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> None:
    """Gateways that run no sandboxes, two sandbox hosts; kill -9 the host that runs the chain's
    container, then the replica that served it."""
    host_config = settings(database, mock_upstream, sandbox_python)
    gateway_config = settings(database, mock_upstream, sandbox_python, backend="hosts")
    with corral_processes(tmp_path) as started:
        hosts = [CorralProcess("sandbox-host", tmp_path / f"host{n}", host_config) for n in (1, 2)]
        started.extend(hosts)
        g1 = CorralProcess("serve", tmp_path / "g1", gateway_config)
        started.append(g1)
        g2 = CorralProcess("serve", tmp_path / "g2", gateway_config)
        started.append(g2)

        first, _ = python(g1.client(), "x = 41\nopen('/mnt/data/kept.txt', 'w').write('survives its host')")
        container_id = container_of(first)
        upload = g2.client().containers.files.create(container_id, file=("upload.txt", b"uploaded through g2"))
        second, logs = python(g2.client(), "x += 1\nprint(x)", previous_response_id=first.id)
        assert logs.strip() == "42"

        placed = location(database, container_id)
        doomed = next((host for host in hosts if host.host_id == placed), None)
        assert doomed is not None, (placed, [host.host_id for host in hosts])
        doomed.kill()
        wait_until_silent(database, doomed.host_id)

        third, logs = python(
            g1.client(),
            "print(open('/mnt/data/kept.txt').read(), open('/mnt/data/upload.txt').read(), 'x' in globals())",
            previous_response_id=second.id,
        )
        assert container_of(third) == container_id, "the same container, on another host"
        assert "survives its host uploaded through g2 False" in logs
        assert "another host" in logs, "the model is told its variables are gone"
        survivor = next(host for host in hosts if host is not doomed)
        assert location(database, container_id) == survivor.host_id
        downloaded = g2.client().containers.files.content.retrieve(upload.id, container_id=container_id).read()
        assert downloaded == b"uploaded through g2"

        g1.kill()
        fourth, logs = python(
            g2.client(), "y = 1\nprint(open('/mnt/data/kept.txt').read())", previous_response_id=third.id
        )
        assert logs.strip() == "survives its host"
        assert g2.client().responses.retrieve(third.id).previous_response_id == second.id
        assert container_of(fourth) == container_id


def test_a_container_whose_host_is_lost_comes_back_with_its_skills(
    database: str, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> None:
    """A container made with a skill through one replica; its host is killed with -9; the next use,
    through the other replica, finds the skill mounted on the surviving host."""
    host_config = settings(database, mock_upstream, sandbox_python)
    gateway_config = settings(database, mock_upstream, sandbox_python, backend="hosts")
    with corral_processes(tmp_path) as started:
        hosts = [CorralProcess("sandbox-host", tmp_path / f"host{n}", host_config) for n in (1, 2)]
        started.extend(hosts)
        g1 = CorralProcess("serve", tmp_path / "g1", gateway_config)
        g2 = CorralProcess("serve", tmp_path / "g2", gateway_config)
        started.extend([g1, g2])
        container = g1.client().containers.create(name="skilled", skills=[inline()])  # type: ignore[call-arg]
        doomed = next(host for host in hosts if host.host_id == location(database, container.id))
        doomed.kill()
        wait_until_silent(database, doomed.host_id)

        tool = {"type": "shell", "environment": {"type": "container_reference", "container_id": container.id}}
        response = g2.client().responses.create(
            model="mock-model",
            input=call("shell", commands=["/mnt/skills/adder/scripts/add.sh 20 22"]),
            tools=[tool],  # type: ignore[list-item]
        )
        output = next(item for item in response.output if item.type == "shell_call_output")
        assert output.output[0].stdout == "42\n", output.output  # type: ignore[union-attr]
        assert location(database, container.id) != doomed.host_id


def test_a_host_that_comes_back_releases_the_containers_that_moved_away(
    database: str, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> None:
    """A host stops answering (SIGSTOP) long enough for its container to be started on the other
    host; once it runs again (SIGCONT), its heartbeat finds the container is another live host's
    and deletes its own copy (its disk with it), while the container keeps working where it is."""
    host_config = settings(database, mock_upstream, sandbox_python)
    gateway_config = settings(database, mock_upstream, sandbox_python, backend="hosts")
    with corral_processes(tmp_path) as started:
        hosts = [CorralProcess("sandbox-host", tmp_path / f"host{n}", host_config) for n in (1, 2)]
        started.extend(hosts)
        gateway = CorralProcess("serve", tmp_path / "g", gateway_config)
        started.append(gateway)
        first, _ = python(gateway.client(), "open('/mnt/data/a.txt', 'w').write('kept')")
        container_id = container_of(first)
        frozen = next(host for host in hosts if host.host_id == location(database, container_id))
        copy = frozen.data_dir / "containers" / container_id
        assert copy.is_dir()
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            wait_until_silent(database, frozen.host_id)
            second, logs = python(
                gateway.client(), "print(open('/mnt/data/a.txt').read())", previous_response_id=first.id
            )
            assert "kept" in logs and location(database, container_id) != frozen.host_id
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 60
        while copy.exists():
            assert time.monotonic() < deadline, "the host that came back kept its copy"
            time.sleep(0.2)
        _, logs = python(gateway.client(), "print(open('/mnt/data/a.txt').read())", previous_response_id=second.id)
        assert logs.strip() == "kept"


def test_a_host_starts_by_deleting_containers_no_record_names(
    database: str, mock_upstream: MockUpstream, sandbox_python: str, tmp_path: Path
) -> None:
    """What a creation that failed half-way left on a host's disk (no record names it) is deleted
    when the host starts, before it is announced."""
    orphan = tmp_path / "host" / "containers" / "cntr_orphan"
    (orphan / "data").mkdir(parents=True)
    (orphan / "data" / "left.txt").write_text("behind")
    with corral_processes(tmp_path) as started:
        host = CorralProcess("sandbox-host", tmp_path / "host", settings(database, mock_upstream, sandbox_python))
        started.append(host)
        assert not orphan.exists()
        assert "released 1 containers that are no longer this host's: ['cntr_orphan']" in host.output()
