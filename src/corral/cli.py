"""Command line: `corral serve`, `corral sandbox-host`, `corral doctor`, `corral mock-upstream`,
`corral db upgrade`."""

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corral.config import Settings

ENV_PREFIX = "CORRAL_"
OVERRIDES = ("host", "port", "database", "data_dir", "bootstrapper", "log_level")


def _env(name: str) -> str | None:
    return os.environ.get(ENV_PREFIX + name)


def _env_list(name: str) -> list[str] | None:
    value = _env(name)
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=_env("HOST"), help="Address to listen on [CORRAL_HOST] (127.0.0.1).")
    parser.add_argument("--port", default=_env("PORT"), help="Port to listen on [CORRAL_PORT] (8080).")
    parser.add_argument(
        "--upstream",
        action="append",
        default=None,
        metavar="URL",
        help="OpenAI-compatible base URL of a model server, e.g. http://127.0.0.1:8000/v1. Repeatable "
        "[CORRAL_UPSTREAM, comma-separated].",
    )
    parser.add_argument(
        "--upstream-api",
        default=_env("UPSTREAM_API"),
        help="What the --upstream servers speak: auto (probe /v1/responses, else /v1/chat/completions), "
        "responses or chat [CORRAL_UPSTREAM_API] (auto).",
    )
    parser.add_argument(
        "--upstream-api-key",
        default=_env("UPSTREAM_API_KEY"),
        help="Bearer key sent to the --upstream servers [CORRAL_UPSTREAM_API_KEY].",
    )
    parser.add_argument(
        "--database",
        default=_env("DATABASE"),
        help="sqlite:///path.db or postgresql://user@host:port/db [CORRAL_DATABASE] (a SQLite file under --data-dir).",
    )
    parser.add_argument(
        "--data-dir",
        default=_env("DATA_DIR"),
        help="Directory for the SQLite database and container files [CORRAL_DATA_DIR] (~/.local/share/corral).",
    )
    parser.add_argument(
        "--config",
        default=_env("CONFIG"),
        metavar="FILE",
        help="YAML file with the same settings and more: several upstreams with their own API kind, "
        "key and model aliases, MCP servers, sandbox limits [CORRAL_CONFIG].",
    )
    parser.add_argument(
        "--bootstrapper",
        default=_env("BOOTSTRAPPER"),
        help="Stateful-tool bootstrapper: 'default', 'noop', or package.module:attribute "
        "[CORRAL_BOOTSTRAPPER] (default).",
    )
    parser.add_argument(
        "--log-level", default=_env("LOG_LEVEL"), help="debug, info, warning… [CORRAL_LOG_LEVEL] (info)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral",
        description="Corral: an OpenAI Responses API gateway in front of your model servers. "
        "Every flag can also be given as an environment variable CORRAL_<FLAG>.",
    )
    parser.add_argument("--version", action="version", version=f"corral {corral_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="Run the gateway.",
        description="Run the gateway: the OpenAI Responses API on --host:--port, routed to --upstream "
        "servers, with state in --database. Each flag reads CORRAL_<FLAG> when not given.",
    )
    _add_serve_arguments(serve)
    serve.add_argument(
        "--workers",
        type=int,
        default=_env("WORKERS"),
        help="Gateway processes sharing the port [CORRAL_WORKERS] (1). More than one needs sandbox.backend "
        "hosts or none: see docs/benchmarks.md, 'Several worker processes'.",
    )

    host = commands.add_parser(
        "sandbox-host",
        help="Serve this host's sandboxes to the gateways that share its database.",
        description="Run containers (code_interpreter, shell) for gateway replicas: announce this host in the "
        "shared --database, heartbeat, and serve the internal sandbox API on --host:--port. Gateways with "
        "sandbox.backend: hosts use only such hosts; replicas with their own sandboxes use both.",
    )
    _add_serve_arguments(host)

    doctor = commands.add_parser(
        "doctor",
        help="Check a model server before putting Corral in front of it.",
        description="Ask an OpenAI-compatible model server what Corral will ask it: list its models, detect "
        "whether it speaks /v1/responses or /v1/chat/completions, then run one plain answer, one streamed "
        "answer and one tool round trip, and print what works. Exit status 0 when everything does.",
    )
    doctor.add_argument("url", metavar="URL", help="Base URL of the server, e.g. http://127.0.0.1:8000/v1.")
    doctor.add_argument("--model", help="Model to try (default: the first one the server lists).")
    doctor.add_argument(
        "--api-key", default=_env("UPSTREAM_API_KEY"), help="Bearer key for the server [CORRAL_UPSTREAM_API_KEY]."
    )
    doctor.add_argument("--api", default="auto", help="auto (detect), responses or chat: which API to exercise (auto).")
    doctor.add_argument("--timeout", type=float, default=120.0, help="Seconds allowed for each call (120).")

    mock = commands.add_parser(
        "mock-upstream",
        help="Run the scripted upstream used by the tests and demos.",
        description="A deterministic model server speaking /v1/responses and /v1/chat/completions. "
        "See corral.mock_upstream for its script language.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="Address to listen on (127.0.0.1).")
    mock.add_argument("--port", type=int, default=8001, help="Port to listen on (8001).")

    db = commands.add_parser("db", help="Database maintenance.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="Run database migrations to the newest version.")
    upgrade.add_argument("--database", default=_env("DATABASE"), help="Database URL [CORRAL_DATABASE].")
    upgrade.add_argument("--data-dir", default=_env("DATA_DIR"), help="Data directory [CORRAL_DATA_DIR].")
    upgrade.add_argument("--config", default=_env("CONFIG"), help="YAML config file [CORRAL_CONFIG].")
    return parser


def corral_version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "unknown"


def _sources(argv: Sequence[str]) -> dict[str, str]:
    """What each setting given by flag or environment was given as: the flag if it is on the command
    line, else its environment variable (config errors name what the operator actually typed)."""
    given = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    sources: dict[str, str] = {}
    for key, flag in (
        *((key, key) for key in OVERRIDES),
        ("config", "config"),
        ("upstreams", "upstream"),
        ("upstream_api", "upstream_api"),
    ):
        option = "--" + flag.replace("_", "-")
        if option in given:
            sources[key] = option
        elif _env(flag.upper()) is not None:
            sources[key] = ENV_PREFIX + flag.upper()
    return sources


def settings_from_args(args: argparse.Namespace, argv: Sequence[str] = ()) -> "Settings":
    from corral.config import load_settings

    return load_settings(
        config_file=args.config,
        upstream_urls=getattr(args, "upstream", None) or _env_list("UPSTREAM"),
        upstream_api=getattr(args, "upstream_api", None),
        upstream_api_key=getattr(args, "upstream_api_key", None),
        overrides={key: getattr(args, key, None) for key in OVERRIDES},
        sources=_sources(argv),
    )


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, checked before the database is migrated and sandboxes
    start (a taken port would otherwise surface only after all that, buried in the log)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _fail(message: str) -> int:
    for line in message.splitlines():
        print(f"corral: error: {line}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "sandbox-host", "db"):
        from corral.config import ConfigError

        try:
            settings = settings_from_args(args, argv)
        except ConfigError as exc:
            return _fail(str(exc))
    if args.command in ("serve", "sandbox-host"):
        problem = port_problem(settings.host, settings.port)
        if problem:
            source = _sources(argv).get("port", "--port")
            return _fail(f"cannot listen on {settings.host}:{settings.port} ({source}): {problem}")
    if args.command == "serve":
        from corral.app import serve

        if args.workers is not None:
            settings.workers = int(args.workers)
        serve(settings)
        return 0
    if args.command == "sandbox-host":
        from corral.sandbox_app import serve_sandbox_host

        serve_sandbox_host(settings)
        return 0
    if args.command == "doctor":
        from corral.operator.doctor import run_doctor

        return asyncio.run(
            run_doctor(args.url, model=args.model, api_key=args.api_key, api=args.api, timeout_s=args.timeout)
        )
    if args.command == "mock-upstream":
        from corral.mock_upstream.app import serve as serve_mock

        serve_mock(args.host, args.port)
        return 0
    if args.command == "db":
        from corral.storage import upgrade

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(upgrade(settings.database_url()))
        print(f"database at the newest version: {settings.database_url()}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
