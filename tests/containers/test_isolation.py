"""The escape suite: each attempt is contained and the backend keeps serving afterwards.

It runs against the local backend in this process, and against a `corral sandbox-host` process
through the remote backend (the internal API in between)."""

import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from corral.sessions.backends.base import SandboxBackend
from corral.sessions.backends.local import LocalSandboxBackend
from corral.sessions.backends.remote import RemoteSandboxBackend
from tests.fixtures.databases import fresh_postgres_url
from tests.fixtures.sandboxes import TEST_DISK_MB
from tests.support.processes import CorralProcess, corral_processes

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="session")]

OUTPUT_LIMIT = 4096
PIDS_LIMIT = 64


@pytest_asyncio.fixture(
    scope="module", loop_scope="session", params=["local", pytest.param("remote", marks=pytest.mark.postgres)]
)
async def escape(
    request: pytest.FixtureRequest, sandbox_python: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[SandboxBackend, Path]]:
    """A backend with two containers, and the host directory its containers live under."""
    root = tmp_path_factory.mktemp(f"isolation-{request.param}")
    if request.param == "local":
        backend = LocalSandboxBackend(
            root,
            python=sandbox_python,
            warm_pool_size=0,
            output_limit=OUTPUT_LIMIT,
            pids_limit=PIDS_LIMIT,
            disk_mb=TEST_DISK_MB,
        )
        await backend.start()
        await backend.create("cntr_a")
        await backend.create("cntr_b")
        yield backend, backend.base
        await backend.aclose()
        return
    secret = secrets.token_hex(16)
    sandbox = {
        "python": sandbox_python,
        "warm_pool_size": 0,
        "output_limit": OUTPUT_LIMIT,
        "pids_limit": PIDS_LIMIT,
        "disk_mb": TEST_DISK_MB,
        "host_secret": secret,
    }
    with fresh_postgres_url() as url, corral_processes(root) as started:
        host = CorralProcess("sandbox-host", root / "host", {"database": url, "sandbox": sandbox})
        started.append(host)
        async with aiohttp.ClientSession() as http:
            remote = RemoteSandboxBackend(host.host_id, host.base, secret, http)
            await remote.create("cntr_a")
            await remote.create("cntr_b")
            yield remote, host.data_dir / "containers"


@pytest.fixture()
def backend(escape: tuple[SandboxBackend, Path]) -> SandboxBackend:
    return escape[0]


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def still_serving(backend: SandboxBackend) -> None:
    result = await backend.run_python("cntr_b", "print('alive')", timeout_s=30)
    assert result.stdout == "alive\n"


async def test_runs_as_an_unprivileged_user(backend: SandboxBackend) -> None:
    result = await backend.run_shell("cntr_a", "id -u", timeout_s=10)
    assert result.stdout.strip() != "0"


async def test_no_network(backend: SandboxBackend) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        code = (
            "import socket\n"
            f"for target in [('127.0.0.1', {port}), ('10.255.255.1', 80)]:\n"
            "    try:\n"
            "        socket.create_connection(target, timeout=2); print('CONNECTED', target)\n"
            "    except OSError as e:\n"
            "        print('blocked', type(e).__name__)\n"
        )
        result = await backend.run_python("cntr_a", code, timeout_s=30)
    finally:
        listener.close()
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("blocked") == 2
    interfaces = await backend.run_shell("cntr_a", "ls /sys/class/net 2>/dev/null || cat /proc/net/dev", timeout_s=10)
    assert "eth" not in interfaces.stdout
    await still_serving(backend)


@pytest.mark.parametrize("path", ["/root", "/work", "/etc/shadow", "/home", "/var/lib/postgresql"])
async def test_host_paths_are_invisible(backend: SandboxBackend, path: str) -> None:
    result = await backend.run_shell("cntr_a", f"ls {path} || cat {path}", timeout_s=10)
    assert result.exit_code != 0
    assert "No such file" in result.stderr


async def test_gateway_data_dir_and_other_containers_are_invisible(escape: tuple[SandboxBackend, Path]) -> None:
    backend, base = escape
    await backend.write_file("cntr_b", "secret.txt", _single(b"b's secret"))
    secret = base / "cntr_b" / "data" / "secret.txt"
    result = await backend.run_shell(
        "cntr_a", f"cat {secret}; ls /mnt/data; find / -name secret.txt 2>/dev/null | head", timeout_s=30
    )
    assert "b's secret" not in result.stdout
    assert "secret.txt" not in result.stdout
    host_base = await backend.run_shell("cntr_a", f"ls {base}", timeout_s=10)
    assert host_base.exit_code != 0


async def test_system_is_read_only_and_tmp_is_private(backend: SandboxBackend) -> None:
    result = await backend.run_shell("cntr_a", "touch /usr/evil; touch /etc/evil; touch /evil", timeout_s=10)
    assert result.exit_code != 0
    assert not Path("/usr/evil").exists() and not Path("/evil").exists()
    wrote = await backend.run_shell("cntr_a", "echo scratch > /tmp/t && cat /tmp/t", timeout_s=10)
    assert wrote.stdout.strip() == "scratch"
    other = await backend.run_shell("cntr_b", "cat /tmp/t", timeout_s=10)
    assert other.exit_code != 0


async def test_fork_bomb_is_contained(backend: SandboxBackend) -> None:
    result = await backend.run_shell("cntr_a", "bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", timeout_s=8)
    assert result.timed_out or "Resource temporarily unavailable" in result.stderr or result.exit_code is not None
    await still_serving(backend)
    after = await backend.run_shell("cntr_a", "echo recovered", timeout_s=20)
    assert after.stdout.strip() == "recovered"


async def test_memory_bomb_is_contained(backend: SandboxBackend) -> None:
    await backend.create("cntr_small", memory_limit="256m")
    result = await backend.run_python("cntr_small", "hog = bytearray(2 * 1024 ** 3)\nprint('allocated')", timeout_s=30)
    assert "allocated" not in result.stdout
    assert result.error is not None
    again = await backend.run_python("cntr_small", "print('back')", timeout_s=30)
    assert again.stdout == "back\n"
    await still_serving(backend)


async def test_infinite_loop_is_interrupted_and_state_kept(backend: SandboxBackend) -> None:
    await backend.run_python("cntr_a", "kept = 'yes'", timeout_s=30)
    looped = await backend.run_python("cntr_a", "while True:\n    pass", timeout_s=2)
    assert looped.timed_out
    after = await backend.run_python("cntr_a", "print(kept)", timeout_s=30)
    assert after.stdout == "yes\n"


async def test_huge_output_is_truncated(backend: SandboxBackend) -> None:
    python = await backend.run_python("cntr_a", "print('x' * 5_000_000)", timeout_s=30)
    assert python.truncated and len(python.stdout) <= OUTPUT_LIMIT
    shell = await backend.run_shell("cntr_a", "yes | head -c 20000000", timeout_s=30)
    assert shell.truncated and shell.exit_code == 0
    assert len(shell.stdout) < 5000
    await still_serving(backend)


async def test_stop_keeps_files_and_the_container_comes_back(
    escape: tuple[SandboxBackend, Path], sandbox_python: str
) -> None:
    """Stopped (expiry) and started again: by a new local backend on the same data directory (a
    gateway restart), or by the same sandbox host."""
    backend, base = escape
    await backend.create("cntr_keep")
    await backend.run_shell("cntr_keep", "echo persisted > kept.txt", timeout_s=10)
    await backend.stop("cntr_keep")
    again = backend
    if isinstance(backend, LocalSandboxBackend):
        again = LocalSandboxBackend(base.parent, python=sandbox_python, warm_pool_size=0, disk_mb=TEST_DISK_MB)
    await again.ensure_running("cntr_keep")
    result = await again.run_shell("cntr_keep", "cat kept.txt", timeout_s=10)
    assert result.stdout.strip() == "persisted"
    await again.destroy("cntr_keep")
    assert not (base / "cntr_keep").exists()
    if again is not backend:
        await again.aclose()


async def test_a_download_dropped_before_its_first_byte_closes_its_file(sandbox_python: str, tmp_path: Path) -> None:
    backend = LocalSandboxBackend(tmp_path, python=sandbox_python, warm_pool_size=0, disk_mb=TEST_DISK_MB)
    await backend.start()
    try:
        await backend.create("cntr_a")
        await backend.write_file("cntr_a", "dropped.txt", _single(b"never read"))
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(20):
            content = await backend.read_file("cntr_a", "dropped.txt")
            del content
        assert len(os.listdir("/proc/self/fd")) == before
        read = await backend.read_file("cntr_a", "dropped.txt")
        assert b"".join([chunk async for chunk in read.chunks]) == b"never read"
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        await backend.aclose()
