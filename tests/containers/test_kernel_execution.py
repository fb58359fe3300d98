"""The Python kernel reports what really happened, stops fully when cancelled, writes no host file
and keeps the gateway's memory bounded whatever the kernel sends.

Races are driven by events and explicit ordering: the test waits for the kernel to say it started,
or holds the kernel in a cell until the test creates a file."""

import asyncio
import os
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from corral.sessions.backends.local import LocalSandboxBackend
from corral.sessions.backends.local import kernel as kernel_module
from corral.sessions.backends.local.kernel import KernelSession
from tests.fixtures.sandboxes import TEST_DISK_MB

pytestmark = [pytest.mark.sandbox, pytest.mark.asyncio(loop_scope="session")]

OUTPUT_LIMIT = 4096
WAIT_S = 120  # only a guard against a hang, never a synchronisation


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backend(sandbox_python: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalSandboxBackend]:
    backend = LocalSandboxBackend(
        tmp_path_factory.mktemp("kernel-execution"),
        python=sandbox_python,
        warm_pool_size=0,
        output_limit=OUTPUT_LIMIT,
        disk_mb=TEST_DISK_MB,
    )
    await backend.start()
    yield backend
    await backend.aclose()


async def container(backend: LocalSandboxBackend, memory_limit: str = "1g") -> str:
    container_id = f"cntr_{secrets.token_hex(4)}"
    await backend.create(container_id, memory_limit=memory_limit)
    result = await backend.run_python(container_id, "kept = 7", timeout_s=WAIT_S)
    assert result.error is None, result
    return container_id


def kernel_of(backend: LocalSandboxBackend, container_id: str) -> KernelSession:
    kernel = backend.sandboxes[container_id].kernel
    assert kernel is not None and kernel.client is not None
    return kernel


def data_dir(backend: LocalSandboxBackend, container_id: str) -> Path:
    return backend.sandboxes[container_id].data


@pytest.fixture()
def output_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, asyncio.Event]]:
    """Events set when a stream output containing their key reaches the gateway."""
    events: dict[str, asyncio.Event] = {}
    take = kernel_module._Collector.take

    def spying(self: Any, *args: Any) -> Any:
        content = args[0]["content"] if len(args) == 1 else args[1]
        text = content.get("text", "") if isinstance(content, dict) else ""
        for marker, event in events.items():
            if isinstance(text, str) and marker in text:
                event.set()
        return take(self, *args)

    monkeypatch.setattr(kernel_module._Collector, "take", spying)
    yield events


def requests_sent(kernel: KernelSession) -> asyncio.Event:
    """Set once the next execute_request has been handed to zmq."""
    assert kernel.client is not None
    sent = asyncio.Event()
    execute = kernel.client.execute

    def spying(*args: Any, **kwargs: Any) -> str:
        msg_id = execute(*args, **kwargs)
        sent.set()
        return msg_id

    kernel.client.execute = spying  # type: ignore[method-assign]
    return sent


async def wait_for_output(kernel: KernelSession, msg_id: str, marker: str) -> None:
    """Read iopub directly (no execution is being followed) until `msg_id` printed `marker`."""
    assert kernel.client is not None
    while True:
        message = await kernel.client.get_iopub_msg(timeout=WAIT_S)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream" and marker in message["content"].get("text", ""):
            return


SLEEPER = "print('CELL-STARTED', flush=True)\nimport time\ntime.sleep(600)\nfinished = True\n"


async def test_a_cancel_while_the_cell_runs_stops_it_before_the_next_call(
    backend: LocalSandboxBackend, output_seen: dict[str, asyncio.Event]
) -> None:
    container_id = await container(backend)
    started = output_seen.setdefault("CELL-STARTED", asyncio.Event())
    call = asyncio.create_task(backend.run_python(container_id, SLEEPER, timeout_s=WAIT_S * 5))
    await asyncio.wait_for(started.wait(), WAIT_S)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    after = await backend.run_python(container_id, "print(kept * 6, 'finished' in globals())", timeout_s=WAIT_S)
    assert after.stdout == "42 False\n", after
    assert after.status == "ok" and after.error is None


async def test_a_cancel_before_the_kernel_starts_the_cell_is_not_lost(backend: LocalSandboxBackend) -> None:
    """The kernel is held in a cell that ignores SIGINT, so the interrupt sent on cancel is lost and the
    cancelled cell starts only after it: the cancel must still end that cell before returning."""
    container_id = await container(backend)
    kernel = kernel_of(backend, container_id)
    assert kernel.client is not None
    blocker = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('BLOCKING', flush=True)\n"
        "while not os.path.exists('/mnt/data/go'):\n"
        "    time.sleep(0.01)\n"
    )
    blocker_id = kernel.client.execute(blocker, stop_on_error=False)
    await wait_for_output(kernel, blocker_id, "BLOCKING")
    sent = requests_sent(kernel)
    call = asyncio.create_task(backend.run_python(container_id, SLEEPER, timeout_s=WAIT_S * 5))
    await asyncio.wait_for(sent.wait(), WAIT_S)
    call.cancel()
    await asyncio.to_thread((data_dir(backend, container_id) / "go").write_text, "go")
    with pytest.raises(asyncio.CancelledError):
        await call
    after = await backend.run_python(container_id, "print(kept * 6, 'finished' in globals())", timeout_s=WAIT_S)
    assert after.stdout == "42 False\n", after
    assert after.status == "ok"


async def test_an_aborted_cell_is_reported_as_not_run(backend: LocalSandboxBackend) -> None:
    """ipykernel aborts queued cells after an error (stop_on_error); put it in that state directly."""
    container_id = await container(backend)
    await backend.run_python(container_id, "get_ipython().kernel._aborting = True", timeout_s=WAIT_S)
    result = await backend.run_python(container_id, "print('RAN')", timeout_s=WAIT_S)
    assert "RAN" not in result.stdout
    assert result.status == "aborted"
    assert result.error is not None and result.error["ename"] == "ExecutionAborted"
    assert "did not run" in result.stderr
    await kernel_of(backend, container_id).stop()
    assert (await backend.run_python(container_id, "print('RAN')", timeout_s=WAIT_S)).stdout == "RAN\n"


async def test_errors_and_timeouts_carry_their_status(backend: LocalSandboxBackend) -> None:
    container_id = await container(backend)
    failed = await backend.run_python(container_id, "print('before')\n1/0", timeout_s=WAIT_S)
    assert failed.status == "error" and failed.stdout == "before\n"
    assert failed.error is not None and failed.error["ename"] == "ZeroDivisionError"
    ran = await backend.run_python(container_id, "print(kept)", timeout_s=WAIT_S)
    assert ran.status == "ok" and ran.stdout == "7\n", "an error does not abort the next call"


@pytest.fixture()
def host_file(tmp_path: Path) -> Path:
    target = tmp_path / "host-secret.txt"
    target.write_text("host data\n")
    target.chmod(0o640)
    return target


def assert_untouched(target: Path) -> None:
    assert target.read_text() == "host data\n"
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_uid == os.getuid()


async def test_a_linked_kernel_log_is_never_followed(backend: LocalSandboxBackend, host_file: Path) -> None:
    container_id = await container(backend)
    plant = (
        "import os\n"
        "try:\n"
        "    os.remove('/run/corral/kernel.log')\n"
        "except OSError:\n"
        "    pass\n"
        f"os.symlink({str(host_file)!r}, '/run/corral/kernel.log')\n"
        "os._exit(1)\n"
    )
    await backend.run_python(container_id, plant, timeout_s=WAIT_S)
    to_the_log = (  # ipykernel forwards fds 1 and 2 to iopub; its copy of the original stderr is the log
        "import os, sys\nos.write(sys.stderr._original_stdstream_copy, b'WRITTEN-BY-THE-SANDBOX')\nprint('next')\n"
    )
    after = await backend.run_python(container_id, to_the_log, timeout_s=WAIT_S)
    assert after.stdout == "next\n", after
    assert_untouched(host_file)


async def test_a_linked_connection_file_name_is_never_followed(
    backend: LocalSandboxBackend, host_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox can read its run directory: make the next kernel's connection file name known to
    it and let it plant a link under that name before the kernel starts."""

    class Predictable:
        planted = True

        def token_hex(self, nbytes: int) -> str:
            if nbytes == 4 and self.planted:
                self.planted = False
                return "deadbeef"
            return secrets.token_hex(nbytes)

    container_id = await container(backend)
    plant = f"import os\nos.symlink({str(host_file)!r}, '/run/corral/kdeadbeef.json')\nos._exit(1)\n"
    await backend.run_python(container_id, plant, timeout_s=WAIT_S)
    monkeypatch.setattr(kernel_module, "secrets", Predictable())
    after = await backend.run_python(container_id, "print('next')", timeout_s=WAIT_S)
    assert after.stdout == "next\n", after
    assert_untouched(host_file)


async def test_images_come_back_as_bytes_and_nothing_is_written(backend: LocalSandboxBackend) -> None:
    container_id = await container(backend)
    kernel = kernel_of(backend, container_id)
    before = sorted(await asyncio.to_thread(os.listdir, data_dir(backend, container_id)))
    code = (
        "import base64\n"
        "from IPython.display import display\n"
        "for payload in (b'first image', b'second image'):\n"
        "    display({'image/png': base64.b64encode(payload).decode()}, raw=True)\n"
        "print('shown')\n"
    )
    result = await kernel.execute(code, timeout_s=WAIT_S, output_limit=OUTPUT_LIMIT)
    assert result.image_data == [b"first image", b"second image"]
    assert result.images == []
    assert result.stdout == "shown\n"
    assert sorted(await asyncio.to_thread(os.listdir, data_dir(backend, container_id))) == before


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


async def test_a_huge_print_keeps_the_gateway_memory_bounded(backend: LocalSandboxBackend) -> None:
    """200 MB in one print is far above the message bound: zmq refuses it before it is buffered."""
    container_id = await container(backend, memory_limit="3g")
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _peak_rss_kib()
    result = await backend.run_python(container_id, "print('x' * 200_000_000)\nprint('done')", timeout_s=WAIT_S)
    growth_mib = (_peak_rss_kib() - baseline) / 1024
    assert growth_mib < 64, f"the gateway's peak RSS grew by {growth_mib:.0f} MiB"
    assert len(result.stdout) <= OUTPUT_LIMIT and result.truncated
    assert "dropped" in result.stderr
    after = await backend.run_python(container_id, "print(kept)", timeout_s=WAIT_S)
    assert after.stdout == "7\n", after
