"""A gateway killed with -9 while it runs a background response: the response does not stay
`in_progress`. Another replica (on PostgreSQL) or the restarted gateway (on SQLite) marks it
failed, a follower's stream ends with OpenAI's failure events, and cancel works on it at once.

Real `corral serve` processes played by the openai SDK; the waits poll the gateway's answers
with a bounded deadline.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from corral.responses.background import OWNER_LOST
from tests.fixtures.databases import fresh_postgres_url
from tests.support.mock import MockUpstream
from tests.support.processes import CorralProcess, corral_processes

LONG = "[[slow 300]] " + " ".join(f"w{i}" for i in range(200))
"""A response that streams for a minute: it is still running when its gateway is killed."""


def settings(mock: MockUpstream, database: str | None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "upstreams": [{"url": mock.url, "api": "responses"}],
        "sandbox": {"warm_pool_size": 0},
        "log_level": "warning",
        **extra,
    }
    if database is not None:
        config["database"] = database
    return config


def wait_for_status(
    client: openai.OpenAI, response_id: str, statuses: tuple[str, ...], seconds: float = 90
) -> openai.types.responses.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        assert time.monotonic() < deadline, f"{response_id} stayed {response.status}"
        time.sleep(0.1)


@pytest.fixture()
def postgres() -> Iterator[str]:
    with fresh_postgres_url() as url:
        yield url


@pytest.mark.postgres
def test_another_replica_fails_the_response_of_a_killed_gateway_and_ends_its_stream(
    postgres: str, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    config = settings(mock_upstream, postgres, background_lease_s=6)
    with corral_processes(tmp_path) as started:
        doomed = CorralProcess("serve", tmp_path / "a", config)
        started.append(doomed)
        survivor = CorralProcess("serve", tmp_path / "b", config)
        started.append(survivor)
        with doomed.client().responses.create(model="mock-model", input=LONG, background=True, stream=True) as created:
            first = next(iter(created))
        response_id = first.response.id
        client = survivor.client()

        follower = client.responses.retrieve(response_id, stream=True, starting_after=first.sequence_number)
        seen = []
        for event in follower:
            seen.append(event)
            if event.type == "response.output_text.delta":
                doomed.kill()
        assert seen[0].type == "response.queued"
        assert [e.type for e in seen[-2:]] == ["error", "response.failed"]
        assert [e.sequence_number for e in seen] == list(range(1, len(seen) + 1))

        failed = client.responses.retrieve(response_id)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.message == OWNER_LOST
        assert client.responses.cancel(response_id).status == "failed", "a settled response stays as it is"


@pytest.mark.postgres
def test_cancel_on_another_replica_works_at_once_when_the_owner_was_killed(
    postgres: str, mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    """The lease is long (10 minutes) and no sweep runs meanwhile: only seeing that the owner is
    gone lets the cancel through, and the database says `cancelled` too."""
    config = settings(mock_upstream, postgres, background_lease_s=1800)
    with corral_processes(tmp_path) as started:
        doomed = CorralProcess("serve", tmp_path / "a", config)
        started.append(doomed)
        survivor = CorralProcess("serve", tmp_path / "b", config)
        started.append(survivor)
        created = doomed.client().responses.create(model="mock-model", input=LONG, background=True)
        client = survivor.client()
        wait_for_status(client, created.id, ("in_progress",))
        doomed.kill()

        assert client.responses.cancel(created.id).status == "cancelled"
        assert client.responses.retrieve(created.id).status == "cancelled"


def test_the_restarted_gateway_fails_the_response_it_was_running_when_killed(
    mock_upstream: MockUpstream, tmp_path: Path
) -> None:
    config = settings(mock_upstream, None, background_lease_s=1800)
    with corral_processes(tmp_path) as started:
        first = CorralProcess("serve", tmp_path / "gw", config)
        started.append(first)
        created = first.client().responses.create(model="mock-model", input=LONG, background=True)
        wait_for_status(first.client(), created.id, ("in_progress",))
        first.kill()

        again = CorralProcess("serve", tmp_path / "gw", config)
        started.append(again)
        failed = wait_for_status(again.client(), created.id, ("failed", "completed", "cancelled"))
        assert failed.status == "failed"
        assert failed.error is not None and failed.error.message == OWNER_LOST
