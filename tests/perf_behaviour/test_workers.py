"""`corral serve --workers N`: worker processes sharing one port, on SQLite and on PostgreSQL."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream
from tests.support.processes import CorralProcess, corral_processes


def worker_processes(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def exercise(gateway: CorralProcess) -> None:
    """Concurrent stored responses and conversation turns: every write lands, whichever worker took it."""
    client = gateway.client()

    def turn(number: int) -> str:
        conversation = client.conversations.create()
        first = client.responses.create(model="mock-model", input=f"hello {number}", conversation=conversation.id)
        second = client.responses.create(model="mock-model", input="again", previous_response_id=first.id)
        return second.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(turn, range(24)))
    for response_id in ids:
        stored = client.responses.retrieve(response_id)
        assert stored.status == "completed"
        items = client.responses.input_items.list(response_id)
        assert [item.type for item in items.data][:1] == ["message"]


def settings(mock: MockUpstream, database: str | None = None) -> dict[str, object]:
    chosen: dict[str, object] = {
        "workers": 2,
        "sandbox": {"backend": "none"},
        "upstreams": [{"url": mock.url, "api": "responses"}],
        "log_level": "warning",
    }
    if database:
        chosen["database"] = database
    return chosen


def test_two_workers_on_sqlite(tmp_path: Path, mock_upstream: MockUpstream) -> None:
    with corral_processes(tmp_path) as started:
        gateway = CorralProcess("serve", tmp_path / "gw", settings(mock_upstream))
        started.append(gateway)
        assert len(worker_processes(gateway.process.pid)) == 2
        exercise(gateway)


@pytest.mark.postgres
def test_two_workers_on_postgres(tmp_path: Path, mock_upstream: MockUpstream) -> None:
    with fresh_postgres_url() as url, corral_processes(tmp_path) as started:
        gateway = CorralProcess("serve", tmp_path / "gw", settings(mock_upstream, url))
        started.append(gateway)
        assert len(worker_processes(gateway.process.pid)) == 2
        exercise(gateway)


def test_workers_refuse_a_local_sandbox_backend(tmp_path: Path, mock_upstream: MockUpstream) -> None:
    config = tmp_path / "corral.yaml"
    chosen = {**settings(mock_upstream), "sandbox": {"backend": "local"}, "data_dir": str(tmp_path)}
    config.write_text(yaml.safe_dump(chosen))
    finished = subprocess.run(
        [sys.executable, "-m", "corral.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert "local sandbox backend runs in one process only" in finished.stderr
