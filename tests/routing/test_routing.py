"""Routing over several scripted upstream workers, and surviving their failures.

No test here depends on how long something takes: breakers run on a fake clock set on the
gateway's workers, and requests that must be in flight are held by events.
"""

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from corral.app import build_app
from corral.config import ApiKeySettings, AuthSettings, RoutingSettings, Settings, UpstreamSettings
from corral.mock_upstream.app import build_app as build_mock
from corral.upstream.registry import UpstreamRegistry
from tests.conftest import NO_SANDBOXES
from tests.routing.test_breaker import FakeClock
from tests.support.mock import MockUpstream
from tests.support.servers import serve_in_thread


@contextmanager
def mocks(count: int) -> Iterator[list[MockUpstream]]:
    with ExitStack() as stack:
        yield [
            MockUpstream(stack.enter_context(serve_in_thread(build_mock(), ready_path="/v1/models")))
            for _ in range(count)
        ]


@contextmanager
def gateway(tmp_path: Path, urls: list[str], **settings: Any) -> Iterator[str]:
    with routed_gateway(tmp_path, urls, **settings) as (base, _):
        yield base


@contextmanager
def routed_gateway(
    tmp_path: Path, urls: list[str], *, clock: FakeClock | None = None, **settings: Any
) -> Iterator[tuple[str, UpstreamRegistry]]:
    """A gateway, and its registry; with `clock`, every worker's breaker runs on it."""
    config = Settings(
        sandbox=NO_SANDBOXES,
        data_dir=tmp_path,
        upstreams=[UpstreamSettings(url=url, name=f"w{n}", models=["mock-model"]) for n, url in enumerate(urls)],
        **settings,
    )
    app = build_app(config)
    with serve_in_thread(app, ready_path="/health") as base:
        registry: UpstreamRegistry = app.state.registry
        if clock is not None:
            for worker in registry.workers:
                worker.breaker.clock = clock
        yield base, registry


def client(base: str, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, **kwargs)  # type: ignore[arg-type]


def counts(workers: list[MockUpstream]) -> list[int]:
    return [len(worker.requests()) for worker in workers]


def failing_upstream(hits: dict[str, int], status: int = 503) -> Starlette:
    """An upstream that answers `status` to everything and counts the model calls that reach it."""

    async def fail(request: Request) -> JSONResponse:
        if request.method == "POST" and request.url.path.endswith("/responses"):
            hits["count"] += 1
        return JSONResponse({"error": {"message": "down", "type": "server_error"}}, status_code=status)

    return Starlette(routes=[Route("/v1/{path:path}", fail, methods=["GET", "POST"])])


def responses_answer(model: str, text: str) -> dict[str, object]:
    message = {"type": "message", "id": "msg_x", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return {"id": "resp_x", "object": "response", "created_at": 0, "status": "completed", "model": model,
            "output": [message], "usage": None}  # fmt: skip


def held_upstream(arrived: threading.Event, release: threading.Event) -> Starlette:
    """An upstream whose answers wait for `release`; `arrived` is set when a request reaches it."""

    async def answer(request: Request) -> JSONResponse:
        body = await request.json()
        arrived.set()
        await asyncio.to_thread(release.wait, 60)
        return JSONResponse(responses_answer(body["model"], "released"))

    return Starlette(routes=[Route("/v1/responses", answer, methods=["POST"])])


def circuit(base: str, name: str) -> str | None:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(f'corral_upstream_circuit_open{{upstream="{name}"}}'):
            return "open" if line.endswith(" 1.0") else "closed"
    return None


def test_round_robin_spreads_evenly(tmp_path: Path) -> None:
    with (
        mocks(3) as workers,
        gateway(tmp_path, [w.url for w in workers], routing=RoutingSettings(policy="round_robin")) as base,
    ):
        for n in range(30):
            client(base).responses.create(model="mock-model", input=f"n{n}", store=False)
        assert counts(workers) == [10, 10, 10]


@pytest.mark.parametrize("policy", ["least_outstanding", "power_of_two"])
def test_load_aware_policies_use_every_worker(tmp_path: Path, policy: str) -> None:
    with (
        mocks(3) as workers,
        gateway(tmp_path, [w.url for w in workers], routing=RoutingSettings(policy=policy)) as base,  # type: ignore[arg-type]
    ):
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            list(
                pool.map(
                    lambda n: client(base).responses.create(model="mock-model", input=f"[[slow 20]] n{n}", store=False),
                    range(30),
                )
            )
        assert all(count > 0 for count in counts(workers))
        assert sum(counts(workers)) == 30


def test_consistent_hashing_keeps_a_conversation_on_one_worker_with_fallback(tmp_path: Path) -> None:
    routing = RoutingSettings(policy="consistent_hash", breaker_failures=1)
    with ExitStack() as stack:
        servers = [stack.enter_context(serve_in_thread(build_mock(), ready_path="/v1/models")) for _ in range(3)]
        workers = [MockUpstream(base) for base in servers]
        base = stack.enter_context(gateway(tmp_path, [w.url for w in workers], routing=routing))
        api = client(base)
        conversation = api.conversations.create()
        for turn in range(5):
            api.responses.create(model="mock-model", input=f"turn {turn}", conversation=conversation.id)
        assert sorted(counts(workers)) == [0, 0, 5], "every turn on the same worker"
        used = set()
        for _ in range(12):
            other = api.conversations.create()
            for worker in workers:
                worker.clear()
            api.responses.create(model="mock-model", input="hi", conversation=other.id)
            used.add(counts(workers).index(1))
        assert len(used) >= 2, "different conversations spread"
        for worker in workers:
            worker.clear()
        api.responses.create(model="mock-model", input="where?", conversation=conversation.id)
        _stop(base_url=workers[counts(workers).index(1)].base)
        answer = api.responses.create(model="mock-model", input="still answered", conversation=conversation.id)
        assert answer.output_text == "You said: still answered"


_STOPPERS: dict[str, threading.Event] = {}


def _stop(base_url: str) -> None:
    """Make a mock unreachable by closing its listening socket's server."""
    import gc

    import uvicorn

    for obj in gc.get_objects():
        if isinstance(obj, uvicorn.Server) and f":{obj.config.port}" in base_url:
            obj.should_exit = True
            deadline = time.monotonic() + 10
            while obj.started and time.monotonic() < deadline:
                try:
                    httpx.get(base_url + "/v1/models", timeout=0.2)
                except httpx.HTTPError:
                    return
                time.sleep(0.05)
            return


def test_a_dead_worker_is_retried_around_without_client_errors(tmp_path: Path) -> None:
    with (
        mocks(2) as workers,
        gateway(
            tmp_path,
            [w.url for w in workers] + ["http://127.0.0.1:9/v1"],
            routing=RoutingSettings(policy="round_robin"),
        ) as base,
    ):
        for n in range(12):
            assert client(base).responses.create(model="mock-model", input=f"n{n}", store=False).status == "completed"
        with client(base).responses.stream(model="mock-model", input="streamed", store=False) as stream:
            assert stream.get_final_response().status == "completed"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'corral_upstream_requests_total{outcome="error",upstream="w2"}' in metrics


def test_circuit_opens_on_a_failing_worker_and_probes_after_cooldown(tmp_path: Path) -> None:
    hits = {"count": 0}
    app = failing_upstream(hits)
    clock = FakeClock()
    routing = RoutingSettings(
        policy="round_robin", breaker_failures=2, breaker_cooldown_s=30, backoff_s=0.001, health_check_interval_s=None
    )
    with (
        mocks(1) as workers,
        serve_in_thread(app) as bad,
        routed_gateway(tmp_path, [workers[0].url, f"{bad}/v1"], routing=routing, clock=clock) as (base, _),
    ):
        for n in range(10):
            assert client(base).responses.create(model="mock-model", input=f"n{n}", store=False).status == "completed"
        opened_after = hits["count"]
        assert opened_after == 2, "two failures open the circuit; no more traffic"
        assert circuit(base, "w1") == "open"
        clock.advance(29.9)
        for n in range(4):
            client(base).responses.create(model="mock-model", input=f"c{n}", store=False)
        assert hits["count"] == opened_after, "still cooling down"
        clock.advance(0.1)
        for n in range(4):
            client(base).responses.create(model="mock-model", input=f"m{n}", store=False)
        assert hits["count"] == opened_after + 1, "one probe after the cooldown, which fails and reopens"
        assert circuit(base, "w1") == "open"


def test_one_tenants_500s_do_not_open_the_circuit_for_everybody(tmp_path: Path) -> None:
    hits = {"count": 0}
    keys = [ApiKeySettings(tenant="mallory", key="key-m"), ApiKeySettings(tenant="alice", key="key-a")]
    routing = RoutingSettings(
        policy="round_robin", breaker_failures=2, retries=1, backoff_s=0.001, health_check_interval_s=None
    )
    with (
        mocks(1) as workers,
        serve_in_thread(failing_upstream(hits, status=500)) as bad,
        gateway(tmp_path, [workers[0].url, f"{bad}/v1"], routing=routing, auth=AuthSettings(keys=keys)) as base,
    ):
        mallory = openai.OpenAI(base_url=f"{base}/v1", api_key="key-m", max_retries=0)
        alice = openai.OpenAI(base_url=f"{base}/v1", api_key="key-a", max_retries=0)
        for n in range(8):
            assert mallory.responses.create(model="mock-model", input=f"n{n}", store=False).status == "completed"
        assert hits["count"] > 2, "past breaker_failures"
        assert circuit(base, "w1") == "closed", "one tenant's 500s say nothing about the worker"
        before = hits["count"]
        for n in range(4):
            assert alice.responses.create(model="mock-model", input=f"a{n}", store=False).status == "completed"
        assert hits["count"] > before, "alice's requests reached w1 too"
        assert circuit(base, "w1") == "open", "once another tenant's requests fail too, the worker is unhealthy"


def test_concurrency_cap_answers_503_with_retry_after(tmp_path: Path) -> None:
    arrived, release = threading.Event(), threading.Event()
    with serve_in_thread(held_upstream(arrived, release)) as held:
        config = Settings(
            sandbox=NO_SANDBOXES,
            data_dir=tmp_path,
            upstreams=[UpstreamSettings(url=f"{held}/v1", models=["mock-model"], max_in_flight=1)],
        )
        with serve_in_thread(build_app(config), ready_path="/health") as base:
            first: list[str] = []
            slow = threading.Thread(
                target=lambda: first.append(
                    client(base).responses.create(model="mock-model", input="a", store=False).output_text
                )
            )
            slow.start()
            try:
                assert arrived.wait(60)
                with pytest.raises(openai.InternalServerError) as caught:
                    client(base).responses.create(model="mock-model", input="second", store=False)
            finally:
                release.set()
                slow.join()
            assert first == ["released"]
            assert client(base).responses.create(model="mock-model", input="third", store=False).status == "completed"
    assert caught.value.status_code == 503 and caught.value.code == "overloaded"
    assert caught.value.response.headers["retry-after"] == "1"


def test_workers_are_added_and_removed_at_run_time(tmp_path: Path) -> None:
    auth = AuthSettings(admin_key="admin-key")
    with mocks(2) as workers:
        config = Settings(
            sandbox=NO_SANDBOXES,
            data_dir=tmp_path,
            upstreams=[UpstreamSettings(url=workers[0].url, name="first")],
            auth=auth,
        )
        with serve_in_thread(build_app(config), ready_path="/health") as base:
            admin = {"Authorization": "Bearer admin-key"}
            assert (
                httpx.post(f"{base}/admin/workers", json={"url": workers[1].url, "name": "second"}).status_code == 401
            )
            added = httpx.post(f"{base}/admin/workers", json={"url": workers[1].url, "name": "second"}, headers=admin)
            assert added.status_code == 201 and "mock-model" in added.json()["models"]
            listed = httpx.get(f"{base}/admin/workers", headers=admin).json()["data"]
            assert [w["name"] for w in listed] == ["first", "second"]
            assert httpx.delete(f"{base}/admin/workers/first", headers=admin).status_code == 200
            workers[1].clear()
            key = httpx.post(f"{base}/admin/keys", json={"tenant": "ops"}, headers=admin).json()["key"]
            api = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
            assert api.responses.create(model="mock-model", input="to the second").status == "completed"
            assert len(workers[1].requests()) == 1


def test_chat_and_completions_are_passed_through(tmp_path: Path) -> None:
    with mocks(1) as workers, gateway(tmp_path, [workers[0].url]) as base:
        api = client(base)
        completion = api.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == "You said: hi"
        chunks = list(
            api.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "yo"}], stream=True)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: yo"
        assert workers[0].requests()[-1]["path"] == "/v1/chat/completions"
        with pytest.raises(openai.NotFoundError):
            api.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


def test_request_ids_and_the_body_limit(tmp_path: Path) -> None:
    with mocks(1) as workers, gateway(tmp_path, [workers[0].url], max_body_bytes=2000) as base:
        answer = httpx.get(f"{base}/v1/models")
        assert answer.headers["x-request-id"].startswith("req_")
        assert answer.headers["x-request-id"] != httpx.get(f"{base}/v1/models").headers["x-request-id"]
        too_big = httpx.post(f"{base}/v1/responses", json={"model": "mock-model", "input": "x" * 5000})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "request_too_large"
        assert workers[0].requests() == []


def test_upstream_timeouts_fail_cleanly(tmp_path: Path) -> None:
    routing = RoutingSettings(read_timeout_s=0.3, retries=1, backoff_s=0.001, health_check_interval_s=None)
    with mocks(1) as workers, gateway(tmp_path, [workers[0].url], routing=routing) as base:
        with pytest.raises(openai.InternalServerError) as first_byte:
            client(base).responses.create(model="mock-model", input="[[slow 400]] a b c", store=False)
        assert first_byte.value.status_code == 502
        body = {"model": "mock-model", "input": "[[slow 600]] a b c d", "stream": True, "store": False}
        with httpx.stream("POST", f"{base}/v1/responses", json=body, timeout=30) as stream:
            kinds = [line.split(": ", 1)[1] for line in stream.iter_lines() if line.startswith("event: ")]
        assert kinds[-2:] == ["error", "response.failed"], "an idle stream is cut, not left hanging"
        assert client(base).responses.create(model="mock-model", input="fast").status == "completed"


def test_active_health_checks_open_the_circuit_of_a_dead_worker(tmp_path: Path) -> None:
    """Read from this gateway's own workers: the circuit gauge is process-wide and keyed by worker
    name, so another gateway of the test process with a `w1` could set it meanwhile."""
    routing = RoutingSettings(health_check_interval_s=0.1, breaker_failures=2)
    with (
        mocks(1) as workers,
        routed_gateway(tmp_path, [workers[0].url, "http://127.0.0.1:9/v1"], routing=routing) as (_, registry),
    ):
        live, dead = registry.workers
        deadline = time.monotonic() + 60
        while not dead.breaker.open and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dead.breaker.open, "health checks of a dead worker open its circuit"
        assert not live.breaker.open


def test_a_recovered_worker_gets_traffic_again(tmp_path: Path) -> None:
    state = {"healthy": False, "hits": 0}

    async def answer(request: Request) -> JSONResponse:
        state["hits"] += 1
        if not state["healthy"]:
            return JSONResponse({"error": {"message": "down", "type": "server_error"}}, status_code=503)
        body = await request.json()
        return JSONResponse(responses_answer(body["model"], "back"))

    flaky = Starlette(routes=[Route("/v1/responses", answer, methods=["POST"])])
    clock = FakeClock()
    routing = RoutingSettings(
        policy="round_robin", breaker_failures=1, breaker_cooldown_s=30, backoff_s=0.001, health_check_interval_s=None
    )
    with (
        mocks(1) as workers,
        serve_in_thread(flaky) as bad,
        routed_gateway(tmp_path, [workers[0].url, f"{bad}/v1"], routing=routing, clock=clock) as (base, _),
    ):
        for n in range(4):
            client(base).responses.create(model="mock-model", input=f"n{n}", store=False)
        assert state["hits"] == 1
        state["healthy"] = True
        clock.advance(30)
        for n in range(6):
            client(base).responses.create(model="mock-model", input=f"m{n}", store=False)
        assert state["hits"] >= 3, "after the probe succeeds the worker is back in the rotation"


def test_passthrough_rediscovers_an_unknown_model_and_gives_its_slot_back(tmp_path: Path) -> None:
    served: list[str] = []

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model"} for name in served]})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        message = {"role": "assistant", "content": f"{body['model']} here"}
        return JSONResponse(
            {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": body["model"],
             "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        )  # fmt: skip

    late = Starlette(
        routes=[Route("/v1/models", models, methods=["GET"]), Route("/v1/chat/completions", chat, methods=["POST"])]
    )
    with serve_in_thread(late) as upstream:
        config = Settings(
            sandbox=NO_SANDBOXES,
            data_dir=tmp_path,
            upstreams=[UpstreamSettings(url=f"{upstream}/v1", name="late")],
            routing=RoutingSettings(health_check_interval_s=None),
        )
        app = build_app(config)
        with serve_in_thread(app, ready_path="/health") as base:
            registry: UpstreamRegistry = app.state.registry
            registry.rediscover_interval_s = 0.0
            served.append("late-model")
            completion = client(base).chat.completions.create(
                model="late-model", messages=[{"role": "user", "content": "hi"}]
            )
            assert completion.choices[0].message.content == "late-model here"
            assert [worker.in_flight for worker in registry.workers] == [0]
