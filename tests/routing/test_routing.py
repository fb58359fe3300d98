"""Routing over several scripted upstream workers, and surviving their failures."""

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from corral.app import build_app
from corral.config import AuthSettings, RoutingSettings, Settings, UpstreamSettings
from corral.mock_upstream.app import build_app as build_mock
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
def gateway(tmp_path: Path, urls: list[str], **settings: object) -> Iterator[str]:
    config = Settings(
        data_dir=tmp_path,
        upstreams=[UpstreamSettings(url=url, name=f"w{n}", models=["mock-model"]) for n, url in enumerate(urls)],
        **settings,  # type: ignore[arg-type]
    )
    with serve_in_thread(build_app(config), ready_path="/health") as base:
        yield base


def client(base: str, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, **kwargs)  # type: ignore[arg-type]


def counts(workers: list[MockUpstream]) -> list[int]:
    return [len(worker.requests()) for worker in workers]


def failing_upstream(hits: dict[str, int]) -> Starlette:
    """An upstream that answers 500 to everything and counts what reaches it."""

    async def fail(request: Request) -> JSONResponse:
        hits["count"] += 1
        return JSONResponse({"error": {"message": "down", "type": "server_error"}}, status_code=500)

    return Starlette(routes=[Route("/v1/{path:path}", fail, methods=["GET", "POST"])])


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
        gateway(tmp_path, [w.url for w in workers], routing=RoutingSettings(policy=policy)) as base,
    ):  # type: ignore[arg-type]
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
    routing = RoutingSettings(policy="round_robin", breaker_failures=2, breaker_cooldown_s=0.6, backoff_s=0.001)
    with (
        mocks(1) as workers,
        serve_in_thread(app) as bad,
        gateway(tmp_path, [workers[0].url, f"{bad}/v1"], routing=routing) as base,
    ):
        for n in range(10):
            assert client(base).responses.create(model="mock-model", input=f"n{n}", store=False).status == "completed"
        opened_after = hits["count"]
        assert opened_after == 2, "two failures open the circuit; no more traffic"
        assert 'corral_upstream_circuit_open{upstream="w1"} 1.0' in httpx.get(f"{base}/metrics").text
        time.sleep(0.7)
        for n in range(4):
            client(base).responses.create(model="mock-model", input=f"m{n}", store=False)
        assert hits["count"] == opened_after + 1, "one probe after the cooldown, which fails and reopens"


def test_concurrency_cap_answers_503_with_retry_after(tmp_path: Path) -> None:
    with mocks(1) as workers:
        config = Settings(data_dir=tmp_path, upstreams=[UpstreamSettings(url=workers[0].url, max_in_flight=1)])
        with serve_in_thread(build_app(config), ready_path="/health") as base:
            slow = threading.Thread(
                target=lambda: client(base).responses.create(
                    model="mock-model", input="[[slow 300]] a b c d e", store=False
                )
            )
            slow.start()
            time.sleep(0.3)
            with pytest.raises(openai.InternalServerError) as caught:
                client(base).responses.create(model="mock-model", input="second", store=False)
            slow.join()
    assert caught.value.status_code == 503 and caught.value.code == "overloaded"
    assert caught.value.response.headers["retry-after"] == "1"


def test_workers_are_added_and_removed_at_run_time(tmp_path: Path) -> None:
    auth = AuthSettings(admin_key="admin-key")
    with mocks(2) as workers:
        config = Settings(data_dir=tmp_path, upstreams=[UpstreamSettings(url=workers[0].url, name="first")], auth=auth)
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
    routing = RoutingSettings(health_check_interval_s=0.1, breaker_failures=2)
    with mocks(1) as workers, gateway(tmp_path, [workers[0].url, "http://127.0.0.1:9/v1"], routing=routing) as base:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if 'corral_upstream_circuit_open{upstream="w1"} 1.0' in httpx.get(f"{base}/metrics").text:
                break
            time.sleep(0.1)
        assert 'corral_upstream_circuit_open{upstream="w1"} 1.0' in httpx.get(f"{base}/metrics").text
        assert 'corral_upstream_circuit_open{upstream="w0"} 0.0' in httpx.get(f"{base}/metrics").text


def test_a_recovered_worker_gets_traffic_again(tmp_path: Path) -> None:
    state = {"healthy": False, "hits": 0}

    async def answer(request: Request) -> JSONResponse:
        state["hits"] += 1
        if not state["healthy"]:
            return JSONResponse({"error": {"message": "down", "type": "server_error"}}, status_code=500)
        body = await request.json()
        message = {"type": "message", "id": "msg_x", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "back", "annotations": []}]}
        return JSONResponse(
            {"id": "resp_x", "object": "response", "created_at": 0, "status": "completed", "model": body["model"],
             "output": [message], "usage": None}
        )  # fmt: skip

    flaky = Starlette(routes=[Route("/v1/responses", answer, methods=["POST"])])
    routing = RoutingSettings(
        policy="round_robin", breaker_failures=1, breaker_cooldown_s=0.3, backoff_s=0.001, health_check_interval_s=None
    )
    with (
        mocks(1) as workers,
        serve_in_thread(flaky) as bad,
        gateway(tmp_path, [workers[0].url, f"{bad}/v1"], routing=routing) as base,
    ):
        for n in range(4):
            client(base).responses.create(model="mock-model", input=f"n{n}", store=False)
        assert state["hits"] == 1
        state["healthy"] = True
        time.sleep(0.4)
        for n in range(6):
            client(base).responses.create(model="mock-model", input=f"m{n}", store=False)
        assert state["hits"] >= 3, "after the probe succeeds the worker is back in the rotation"
