"""Fairness between tenants for sandbox slots: each tenant gets a fair share by default (a cap the
operator can raise), and a full gateway stops the least recently used idle container (status
`expired`, files kept) before it refuses anybody.

Real sandboxes behind a gateway with keys for several tenants, played by the openai SDK. Idleness
is the container service's clock, which the test moves: nothing waits for time to pass.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from corral.config import ApiKeySettings, AuthSettings, QuotaSettings, SandboxSettings
from tests.conftest import Gateway, start_gateway
from tests.fixtures.sandboxes import TEST_DISK_MB
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox

KEYS = {"team-a": "sk-fair-a", "team-b": "sk-fair-b"}
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@contextmanager
def fair_gateway(
    mock: MockUpstream, sandbox_python: str, data_dir: Path, clock: Clock, *, max_containers: int, **auth: Any
) -> Iterator[Gateway]:
    settings = SandboxSettings(
        python=sandbox_python, warm_pool_size=0, max_containers=max_containers, disk_mb=TEST_DISK_MB
    )
    keys = [ApiKeySettings(tenant=tenant, key=key) for tenant, key in KEYS.items()]
    with start_gateway(mock, data_dir, sandbox=settings, auth=AuthSettings(keys=keys, **auth)) as gateway:
        gateway.app.state.containers.clock = clock
        yield gateway


def client(gateway: Gateway, tenant: str) -> openai.OpenAI:
    return gateway.client(api_key=KEYS[tenant])


def auto_request(api: openai.OpenAI) -> str | None:
    """An `auto` code_interpreter request on a new chain: the id of the container it got, or None on 429."""
    try:
        response = api.responses.create(model="mock-model", input='[[call python {"code": "1"}]]', tools=[AUTO])
    except openai.RateLimitError:
        return None
    return next(item.container_id for item in response.output if item.type == "code_interpreter_call")


def statuses(api: openai.OpenAI) -> dict[str, str]:
    return {container.id: container.status for container in api.containers.list(limit=100)}


def test_one_tenant_cannot_take_every_slot(
    mock: MockUpstream, sandbox_python: str, data_dir: Path, clock: Clock
) -> None:
    """Four slots, so a default share of one each: team-a's burst of `auto` requests leaves room
    for team-b; once idle, team-a's container makes way for team-a's next one."""
    with fair_gateway(mock, sandbox_python, data_dir, clock, max_containers=4) as gateway:
        a, b = client(gateway, "team-a"), client(gateway, "team-b")
        burst = [auto_request(a) for _ in range(4)]

        assert auto_request(b) is not None, "another tenant still gets a container"
        kept = [container for container in burst if container is not None]
        assert len(kept) == 1, burst
        assert list(statuses(a).values()) == ["running"]

        clock.now += 61
        newer = auto_request(a)
        assert newer is not None and newer != kept[0]
        assert statuses(a) == {newer: "running", kept[0]: "expired"}
        local = gateway.app.state.containers.hosts.local
        assert (local.base / kept[0]).exists(), "an evicted container's files stay until it is deleted"


def test_a_full_gateway_stops_the_least_recently_used_idle_container_before_refusing(
    mock: MockUpstream, sandbox_python: str, data_dir: Path, clock: Clock
) -> None:
    """Three slots and a cap the operator raised to three: team-a fills the gateway; team-b gets a
    slot once team-a's containers are idle, taken from team-a's least recently used ones while
    team-a holds more than team-b; then team-b's own idle container makes way, not team-a's last."""
    raised = QuotaSettings(live_containers=3)
    with fair_gateway(mock, sandbox_python, data_dir, clock, max_containers=3, quotas=raised) as gateway:
        a, b = client(gateway, "team-a"), client(gateway, "team-b")
        x = a.containers.create(name="x").id
        clock.now += 1
        y = a.containers.create(name="y").id
        clock.now += 1
        z = a.containers.create(name="z").id
        clock.now += 1
        a.containers.retrieve(x)

        with pytest.raises(openai.RateLimitError):
            b.containers.create(name="too soon: nothing is idle")

        clock.now += 100
        first = b.containers.create(name="first").id
        assert statuses(a) == {x: "running", y: "expired", z: "running"}
        clock.now += 1
        second = b.containers.create(name="second").id
        assert statuses(a) == {x: "running", y: "expired", z: "expired"}
        assert statuses(b) == {first: "running", second: "running"}

        clock.now += 100
        third = b.containers.create(name="team-a holds fewer: team-b's own idle one makes way").id
        assert statuses(a) == {x: "running", y: "expired", z: "expired"}
        assert statuses(b) == {first: "expired", second: "running", third: "running"}
