"""`api: auto` finds what each upstream speaks; a wrong explicit kind or a suspicious URL is said
at start, and readiness holds every model to at least one usable upstream."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from corral.app import build_app
from corral.config import SandboxSettings, Settings, UpstreamSettings
from tests.operator.support import MODEL, ChatOnlyServer
from tests.support.mock import MockUpstream
from tests.support.servers import free_port, serve_in_thread

NO_SANDBOX = SandboxSettings(warm_pool_size=0)


@contextmanager
def gateway(tmp_path: Path, *upstreams: UpstreamSettings, **settings: Any) -> Iterator[tuple[str, Any]]:
    app = build_app(Settings(data_dir=tmp_path, upstreams=list(upstreams), sandbox=NO_SANDBOX, **settings))
    with serve_in_thread(app, ready_path="/health") as base:
        yield base, app


@pytest.fixture()
def chat_only() -> Iterator[tuple[str, ChatOnlyServer]]:
    server = ChatOnlyServer()
    with serve_in_thread(server.app) as base:
        yield f"{base}/v1", server


def test_auto_is_the_default_and_falls_back_to_chat_completions(
    chat_only: tuple[str, ChatOnlyServer], tmp_path: Path
) -> None:
    url, server = chat_only
    assert UpstreamSettings(url=url).api == "auto"
    with gateway(tmp_path, UpstreamSettings(url=url)) as (base, app):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        assert client.responses.create(model=MODEL, input="hi").output_text == "Hello there."
        assert server.paths == ["/v1/chat/completions"], "the probe ran no completion"
        [worker] = app.state.registry.describe()
        assert (worker["api"], worker["configured_api"], worker["problem"]) == ("chat", "auto", None)


def test_auto_picks_responses_where_the_server_speaks_it(mock: MockUpstream, tmp_path: Path) -> None:
    with gateway(tmp_path, UpstreamSettings(url=mock.url)) as (base, _app):
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        assert client.responses.create(model="mock-model", input="hi").output_text == "You said: hi"
    assert [request["path"] for request in mock.requests()] == ["/v1/responses"], "the probe reached no handler"


def test_a_wrong_explicit_kind_is_an_error_that_says_which_kind_answered(
    chat_only: tuple[str, ChatOnlyServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = chat_only
    with caplog.at_level(logging.INFO), gateway(tmp_path, UpstreamSettings(url=url, api="responses")) as (base, _app):
        ready = httpx.get(f"{base}/health/ready")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "upstream" in r.getMessage()]
    assert len(errors) == 1, errors
    assert f"configured as api: responses, but {url}/responses is not served" in errors[0]
    assert f"{url}/chat/completions answers: use api: chat (or auto)" in errors[0]
    assert ready.status_code == 503
    assert ready.json()["checks"]["upstreams"] == "failing"
    assert ready.json()["models"] == {MODEL: "no usable upstream"}


def test_a_url_without_v1_or_scheme_that_finds_no_models_is_warned_about(
    chat_only: tuple[str, ChatOnlyServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = chat_only
    root = url.removesuffix("/v1")
    bare = root.removeprefix("http://") + "/v1"
    with caplog.at_level(logging.WARNING), gateway(tmp_path, UpstreamSettings(url=root), UpstreamSettings(url=bare)):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"upstream {root} lists no models and its URL has no /v1: did you mean '{root}/v1'?" in warnings
    assert f"upstream URL '{bare}' has no scheme: did you mean 'http://{bare}'?" in warnings


def test_readiness_needs_a_usable_upstream_for_every_model(mock: MockUpstream, tmp_path: Path) -> None:
    dead = UpstreamSettings(url=f"http://127.0.0.1:{free_port()}/v1", models=["ghost"], name="dead")
    with gateway(tmp_path, UpstreamSettings(url=mock.url), routing={"health_check_interval_s": None}) as (base, _):
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["upstreams"] == "ok"
    with gateway(tmp_path, UpstreamSettings(url=mock.url), dead, routing={"health_check_interval_s": None}) as (
        base,
        _,
    ):
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["upstreams"] == "failing"
        assert ready.json()["models"] == {"ghost": "no usable upstream"}
        assert httpx.get(f"{base}/health").status_code == 200


def test_readiness_fails_without_any_model(tmp_path: Path) -> None:
    with gateway(tmp_path) as (base, _):
        ready = httpx.get(f"{base}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["upstreams"] == "failing"


async def test_servers_that_answer_404_to_get_are_asked_with_an_empty_post() -> None:
    """cpp-httplib and Go routers answer 404 to a GET on any path: the POST decides."""
    from corral.upstream.api_kind import detect_api

    async def anything(request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse("404 page not found", 404)
        if request.url.path == "/v1/responses":
            return JSONResponse({"error": {"message": "'input' is required"}}, 400)
        return PlainTextResponse("404 page not found", 404)

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    with serve_in_thread(app) as base:
        async with aiohttp.ClientSession() as http:
            auto = await detect_api(http, f"{base}/v1", {"Content-Type": "application/json"})
            wrong = await detect_api(http, f"{base}/v1", {"Content-Type": "application/json"}, "chat")
    assert auto.kind == "responses" and auto.problem is None
    assert wrong.problem is not None and "use api: responses" in wrong.problem
