"""The start-up banner: what this gateway is connected to and how to call it, in one log record.

Everything is read from the objects the app built (not re-derived from settings), so the banner
shows what discovery found: the API each upstream turned out to speak, the models it listed, the
limits the sandbox backend could actually enforce on this host.
"""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from corral.cli import corral_version
from corral.config import Settings


def safe_url(url: str) -> str:
    """`url` with its password replaced by `***` (user names and hosts stay: they help)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _upstream_lines(registry: Any) -> list[str]:
    if not registry.workers:
        return ["  upstreams: none (give --upstream URL or upstreams: in --config); every request is a 404"]
    lines = ["  upstreams:"]
    for entry in registry.describe():
        api = entry["api"]
        if entry.get("configured_api") == "auto":
            api = f"{api} (not detected yet)" if api == "auto" else f"{api} (detected)"
        models = ", ".join(entry["models"]) or "none yet (asked again by the health checks)"
        lines.append(f"    {entry['url']}  api: {api}  models: {models}")
        if entry.get("problem"):
            lines.append(f"      problem: {entry['problem']}")
    return lines


def sandbox_description(containers: Any, settings: Settings) -> str:
    if containers is None:
        return "none (code_interpreter and shell are disabled; see the warnings above)"
    hosts = getattr(containers, "hosts", None)
    local = getattr(hosts, "local", None)
    if local is None:
        return "remote sandbox hosts announced in the database"
    parts = ["local bubblewrap"]
    limits = getattr(local, "limits", None)
    if limits is not None:
        parts.append(limits.describe())
    parts.append("seccomp on")
    disks = getattr(local, "disks", None)
    if disks is not None and disks.enabled:
        parts.append(f"disk quota {disks.size_bytes // (1024 * 1024)} MiB per container")
    else:
        parts.append("no disk quota")
    parts.append(f"up to {settings.sandbox.max_containers} containers")
    return "; ".join(parts)


def _mcp_lines(settings: Settings) -> list[str]:
    if not settings.mcp_servers:
        return ["  MCP servers: none configured (requests may still name a server_url)"]
    lines = ["  MCP servers:"]
    for label, server in sorted(settings.mcp_servers.items()):
        where = server.url if server.transport != "stdio" else " ".join([server.command or "", *server.args])
        lines.append(f"    {label}: {server.transport} {where}")
    return lines


def _base_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/v1"


def sdk_snippet(base_url: str, model: str, auth_on: bool) -> list[str]:
    key = '"<your corral key>"' if auth_on else '"unused"'
    return [
        "from openai import OpenAI",
        f'client = OpenAI(base_url="{base_url}", api_key={key})',
        f'print(client.responses.create(model="{model}", input="Say hello.").output_text)',
    ]


def startup_banner(settings: Settings, state: Any) -> str:
    registry = state.registry
    keyring = state.keyring
    auth_on = bool(getattr(keyring, "enabled", False))
    models = [entry["id"] for entry in registry.list_models()]
    base = _base_url(settings)
    lines = [f"corral {corral_version()} ready at {base}"]
    lines += _upstream_lines(registry)
    lines.append(f"  data directory: {settings.data_dir}")
    lines.append(f"  database: {safe_url(settings.database_url())}")
    lines.append(f"  sandboxes: {sandbox_description(getattr(state, 'containers', None), settings)}")
    lines.append(
        "  authentication: on (API keys map to tenants)"
        if auth_on
        else "  authentication: off (every caller is the one open tenant; serve on localhost only)"
    )
    lines += _mcp_lines(settings)
    if models:
        lines.append("  try it (Python, pip install openai):")
        lines += [f"    {line}" for line in sdk_snippet(base, models[0], auth_on)]
    else:
        lines.append("  no model listed yet: GET /v1/models stays empty until an upstream answers /models")
    return "\n".join(lines)
