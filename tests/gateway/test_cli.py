"""`corral serve` as a real process: flags, environment variables, the YAML file, --help."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai

from tests.support.mock import MockUpstream
from tests.support.servers import free_port, wait_for


def corral(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@contextmanager
def serving(args: list[str], env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral.cli", "serve", *args],
        env={**os.environ, "CORRAL_PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_help_explains_every_flag() -> None:
    top = corral("--help")
    assert top.returncode == 0 and "serve" in top.stdout
    serve = corral("serve", "--help")
    for flag in (
        "--host",
        "--port",
        "--upstream",
        "--upstream-api",
        "--upstream-api-key",
        "--database",
        "--data-dir",
        "--config",
    ):
        assert flag in serve.stdout
    assert "CORRAL_UPSTREAM" in serve.stdout


def test_serve_with_environment_variables(mock: MockUpstream, tmp_path: Path) -> None:
    env = {"CORRAL_UPSTREAM": mock.url, "CORRAL_DATA_DIR": str(tmp_path), "CORRAL_UPSTREAM_API": "chat"}
    with serving([], env) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        assert client.responses.create(model="mock-model", input="via env").output_text == "You said: via env"
        assert mock.requests()[-1]["path"] == "/v1/chat/completions"
    assert (tmp_path / "corral.db").exists()


def test_serve_with_a_config_file_and_aliases(mock: MockUpstream, tmp_path: Path) -> None:
    config = tmp_path / "corral.yaml"
    config.write_text(
        f"upstreams:\n  - url: {mock.url}\n    api: responses\n    api_key: upstream-secret\n"
        "    aliases:\n      friendly: mock-model\n"
    )
    with serving(["--config", str(config), "--data-dir", str(tmp_path)], {}) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        assert "friendly" in {m.id for m in client.models.list()}
        response = client.responses.create(model="friendly", input="alias")
        assert response.output_text == "You said: alias"
        assert mock.requests()[-1]["body"]["model"] == "mock-model"
        assert mock.requests()[-1]["headers"]["authorization"] == "Bearer upstream-secret"
        assert httpx.get(f"{base}/health").status_code == 200


def test_db_upgrade_command(tmp_path: Path) -> None:
    result = corral("db", "upgrade", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "corral.db").exists()
