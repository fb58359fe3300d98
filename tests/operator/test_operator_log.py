"""What `corral serve` tells its operator: a banner at start, one line per request, no library noise."""

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.operator.support import Served, serving
from tests.support.mock import MockUpstream

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def request_lines(served: Served) -> list[str]:
    return [line for line in served.log().splitlines() if "logger=corral.requests" in line]


def banner(served: Served) -> str:
    log = served.log()
    start = log.index("ready at http://")
    return log[start : log.index("\nINFO:", start) if "\nINFO:" in log[start:] else len(log)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-log")


@pytest.fixture(scope="module")
def served(mock_upstream: MockUpstream, data: Path) -> Iterator[Served]:
    mock, tmp_path = mock_upstream, data
    config = tmp_path / "corral.yaml"
    config.write_text("sandbox:\n  warm_pool_size: 0\nmcp_servers:\n  docs:\n    url: http://127.0.0.1:9/mcp\n")
    env = {"CORRAL_UPSTREAM": mock.url, "CORRAL_DATA_DIR": str(tmp_path / "data"), "CORRAL_LOG_LEVEL": "info"}
    with serving(["--config", str(config)], env, tmp_path / "corral.log") as running:
        client = openai.OpenAI(base_url=f"{running.base}/v1", api_key="k", max_retries=0)
        client.responses.create(model="mock-model", input="plain")
        with client.responses.stream(
            model="mock-model", input='[[call get_weather {"city": "Paris"}]]', tools=[WEATHER]
        ) as stream:
            stream.until_done()
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="no-such-model", input="hi")
        client.models.list()
        yield running


def test_one_line_per_request_with_tenant_model_worker_status_tool_calls_and_latency(
    served: Served, mock_upstream: MockUpstream
) -> None:
    mock = mock_upstream
    lines = request_lines(served)
    assert len(lines) == 4, lines
    plain, streamed, missing, models = lines
    worker = f"worker={mock.url}"
    assert re.search(rf"level=INFO .* msg=POST /v1/responses 200 tenant=default model=mock-model {worker} "
                     r"status=completed tool_calls=0 latency_ms=\d+$", plain), plain  # fmt: skip
    assert re.search(rf"POST /v1/responses 200 tenant=default model=mock-model {worker} "
                     r"status=completed tool_calls=1 latency_ms=\d+$", streamed), streamed  # fmt: skip
    assert "POST /v1/responses 404 tenant=default model=no-such-model worker=- status=-" in missing
    assert re.search(r"GET /v1/models 200 tenant=default latency_ms=\d+$", models), models
    request_ids = {re.search(r"request_id=(\S+)", line).group(1) for line in lines}  # type: ignore[union-attr]
    assert len(request_ids) == 4 and "-" not in request_ids


def test_no_third_party_lines_at_info(served: Served) -> None:
    noisy = [
        line
        for line in served.log().splitlines()
        if re.search(r"level=(INFO|DEBUG) logger=(aiosqlite|traitlets|httpx|httpcore|alembic|sqlalchemy|jupyter)", line)
    ]
    assert noisy == []
    assert "logger=corral" in served.log()


def test_the_banner_says_what_the_gateway_is_connected_to(
    served: Served, mock_upstream: MockUpstream, data: Path
) -> None:
    mock, tmp_path = mock_upstream, data
    text = banner(served)
    assert f"{mock.url}  api: responses (detected)  models: mock-model, mock-model-2" in text
    assert f"data directory: {tmp_path / 'data'}" in text
    assert f"database: sqlite:///{tmp_path / 'data' / 'corral.db'}" in text
    sandboxes = re.search(r"sandboxes: (.*)", text).group(1)  # type: ignore[union-attr]
    assert sandboxes.startswith("none") or (
        "seccomp on" in sandboxes and ("cgroup" in sandboxes or "rlimits" in sandboxes) and "disk quota" in sandboxes
    )
    assert "authentication: off" in text
    assert "docs: streamable_http http://127.0.0.1:9/mcp" in text
    assert 'client = OpenAI(base_url="http://127.0.0.1:' in text
    assert 'client.responses.create(model="mock-model", input=' in text


def test_database_passwords_are_hidden() -> None:
    from corral.operator.banner import safe_url

    assert (
        safe_url("postgresql://corral:s3cret@db.internal:5432/corral")
        == "postgresql://corral:***@db.internal:5432/corral"
    )
    assert safe_url("sqlite:////var/lib/corral/corral.db") == "sqlite:////var/lib/corral/corral.db"


def test_library_loggers_are_quiet_at_info_and_speak_at_debug() -> None:
    from corral.api.request_ids import NOISY_LOGGERS, configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    try:
        configure_logging("info")
        assert not logging.getLogger("aiosqlite").isEnabledFor(logging.INFO)
        assert not logging.getLogger("traitlets").isEnabledFor(logging.INFO)
        assert logging.getLogger("aiosqlite").isEnabledFor(logging.WARNING)
        assert logging.getLogger("corral.requests").isEnabledFor(logging.INFO)
        configure_logging("debug")
        assert logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
