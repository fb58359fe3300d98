"""Configuration mistakes end `corral` at once, in one line each that names what to fix."""

import socket
from pathlib import Path

from tests.operator.support import corral


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_version() -> None:
    result = corral("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("corral ") and result.stdout.split()[1][0].isdigit()


def test_a_misspelled_yaml_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "corral.yaml"
    config.write_text("sandbox:\n  disk_mbb: 10\nupstreams:\n  - url: http://127.0.0.1:9/v1\n    apikey: k\n")
    result = corral("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert sorted(error_lines(result.stderr)) == [
        f"corral: error: {config}: key 'sandbox.disk_mbb': unknown setting (did you mean 'disk_mb'?)",
        f"corral: error: {config}: key 'upstreams[0].apikey': unknown setting (did you mean 'api_key'?)",
    ]


def test_a_yaml_syntax_error_gives_its_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "corral.yaml"
    config.write_text("port: 8080\nupstreams: [http://a/v1\nhost: x\n")
    result = corral("serve", "--config", str(config))
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith(f"corral: error: {config}:3:5: YAML syntax error:"), line


def test_a_missing_config_file_is_named_with_the_flag_or_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    by_flag = corral("serve", "--config", str(missing))
    assert by_flag.returncode == 2
    assert error_lines(by_flag.stderr) == [f"corral: error: --config {missing}: no such file"]
    by_env = corral("serve", env={"CORRAL_CONFIG": str(missing)})
    assert error_lines(by_env.stderr) == [f"corral: error: CORRAL_CONFIG {missing}: no such file"]


def test_a_bad_value_names_the_flag_or_the_variable_it_came_from(tmp_path: Path) -> None:
    by_env = corral("serve", "--data-dir", str(tmp_path), env={"CORRAL_PORT": "eighty"})
    assert by_env.returncode == 2
    [line] = error_lines(by_env.stderr)
    assert line.startswith("corral: error: CORRAL_PORT: input should be a valid integer") and "'eighty'" in line
    by_flag = corral("serve", "--port", "eighty", "--data-dir", str(tmp_path))
    [line] = error_lines(by_flag.stderr)
    assert line.startswith("corral: error: --port: input should be a valid integer")
    kind = corral("serve", "--upstream", "http://127.0.0.1:9/v1", "--upstream-api", "chatt")
    assert error_lines(kind.stderr) == ["corral: error: --upstream-api: 'chatt' is not one of auto, responses, chat"]


def test_a_taken_port_is_reported_before_the_database_is_touched(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = corral("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), timeout=30)
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith(f"corral: error: cannot listen on 127.0.0.1:{port} (--port): "), line
    assert "in use" in line
    assert not (tmp_path / "data").exists(), "nothing was migrated or started"
