"""One settings object, layered from defaults, a YAML file and the command line.

Precedence, lowest first: built-in defaults, the YAML file (`--config`), then the values `corral.cli`
passes as overrides: a flag, or when the flag is absent its `CORRAL_<FLAG>` environment variable.
Only settings that have a flag have a variable; the YAML file holds everything the flags do and more
(several upstreams with their own API kind, key and model aliases; MCP servers; sandbox settings).
The variables are read in `cli.py`, beside the flags they stand for, so that an error names what
the operator actually typed (`CORRAL_PORT` or `--port`, see `load_settings`'s `sources`).
"""

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

UpstreamAPI = Literal["auto", "responses", "chat"]


class UpstreamSettings(BaseModel):
    """One upstream model server (a worker) speaking an OpenAI-compatible API."""

    model_config = ConfigDict(extra="forbid")

    url: str
    api: UpstreamAPI = Field(
        default="auto",
        description="auto: probe /responses at start and fall back to /chat/completions; an explicit kind is "
        "checked the same way and a wrong one reported.",
    )
    api_key: str | None = None
    name: str | None = None
    models: list[str] | None = Field(
        default=None, description="Models this upstream serves; discovered from /models when omitted."
    )
    aliases: dict[str, str] = Field(default_factory=dict, description="Client-facing name -> upstream model.")
    max_tokens_field: str = "max_tokens"
    hosted_tools: bool = Field(
        default=False,
        description="Passthrough: the upstream hosts code_interpreter/shell itself (e.g. OpenAI).",
    )
    max_in_flight: int | None = Field(default=None, description="Concurrent requests this worker takes.")
    forward_client_key: bool = Field(
        default=False,
        description="Send the caller's own upstream key (X-Upstream-Api-Key, or its bearer key when auth is off).",
    )

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


Policy = Literal["round_robin", "least_outstanding", "power_of_two", "consistent_hash"]


class RoutingSettings(BaseModel):
    """How requests spread over the workers that serve a model, and how failures are survived."""

    model_config = ConfigDict(extra="forbid")

    policy: Policy = "least_outstanding"
    model_policies: dict[str, Policy] = Field(default_factory=dict)
    retries: int = Field(default=2, description="Further attempts, on other workers, before the first byte.")
    backoff_s: float = 0.05
    breaker_failures: int = Field(default=5, description="Consecutive failures that open a worker's circuit.")
    breaker_cooldown_s: float = Field(default=10.0, description="Open circuit time before one probe request.")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = Field(default=300.0, description="Longest wait for the first byte, and between events.")
    total_timeout_s: float | None = Field(default=None, description="Longest model call, streamed or not.")
    health_check_interval_s: float | None = Field(
        default=15.0, description="Active checks (GET /models) of every worker; None turns them off."
    )


class McpServerSettings(BaseModel):
    """An MCP server declared by the operator, referenced by requests through its label."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["streamable_http", "sse", "stdio"] = "streamable_http"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    timeout_s: float = 30.0


class ApiKeySettings(BaseModel):
    """A key for one tenant: give `key_sha256` (hex), or `key` (hashed at load, never kept)."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    key_sha256: str | None = None
    key: str | None = None


class QuotaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = None
    concurrent_requests: int | None = None
    live_containers: int | None = None
    container_storage_mb: int | None = None
    file_storage_mb: int | None = None


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeySettings] = Field(default_factory=list)
    keys_file: Path | None = Field(default=None, description="Lines of `tenant sha256-hex`; # comments.")
    admin_key_sha256: str | None = None
    admin_key: str | None = None
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    tenant_quotas: dict[str, QuotaSettings] = Field(default_factory=dict)


class SandboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "hosts", "none"] = Field(
        default="local",
        description="local: run sandboxes here (and, on a shared database, serve them to the other replicas); "
        "hosts: run none here, use the sandbox hosts announced in the database; "
        "none: no containers (code_interpreter and shell are refused).",
    )
    advertise_url: str | None = Field(
        default=None, description="How other processes reach this one's sandboxes (default http://host:port)."
    )
    host_ttl_s: float = Field(
        default=15.0, description="A sandbox host silent this long is gone: its containers move at their next use."
    )
    host_secret: str | None = Field(
        default=None,
        description="Secret between gateways and sandbox hosts (default: made once, kept in the database)",
    )
    python: str | None = Field(default=None, description="Interpreter with ipykernel used inside sandboxes.")
    warm_pool_size: int = 1
    max_containers: int = 32
    default_expiry_minutes: int = 20
    execution_timeout_s: float = 60.0
    output_limit: int = Field(default=65536, description="Output kept per call, in characters (bytes for shell).")
    pids_limit: int = Field(default=256, description="Processes per container.")
    disk_mb: int = Field(default=1024, description="Each container's own disk (allocated in full); 0: no disk quota.")
    disk_reserve_mb: int = Field(default=1024, description="Free space a new container's disk must leave on the host.")
    max_containers_per_tenant: int | None = Field(
        default=None,
        description="Live containers of one tenant when its quota sets no `live_containers` and authentication "
        "is on (default: a quarter of max_containers, at least 1); the one open tenant of a gateway without "
        "authentication has no such cap.",
    )
    evict_idle_after_s: float = Field(
        default=60.0,
        description="A container unused this long may be stopped (status expired, files kept) to make room "
        "for another when its tenant is at its cap or every sandbox slot is taken.",
    )

    def tenant_share(self) -> int:
        return self.max_containers_per_tenant or max(1, self.max_containers // 4)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    upstreams: list[UpstreamSettings] = Field(default_factory=list)
    database: str | None = None
    auto_migrate: bool = Field(default=True, description="Run migrations at start (SQLite always does).")
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    log_level: str = "info"
    workers: int = Field(default=1, ge=1, description="Gateway processes sharing the port (`corral serve --workers`).")
    bootstrapper: str = "default"
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    mcp_timeout_s: float = 30.0
    max_tool_calls: int = 32
    max_body_bytes: int = Field(default=32 * 1024 * 1024, description="Largest request body accepted (413 above).")
    max_file_bytes: int = Field(
        default=512 * 1024 * 1024, description="Largest file accepted by POST /v1/files and per upload part."
    )
    websocket_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long a WebSocket connection to /v1/responses may stay open (OpenAI's limit: 60 minutes).",
    )
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    background_lease_s: float = Field(
        default=15.0,
        description="A background response's lease: a gateway that runs it renews it every third of this; "
        "unrenewed this long, any replica marks the response failed (replicas' clocks must agree).",
    )

    def default_live_containers(self) -> int | None:
        """Each tenant's fair share of the sandboxes, unless its quota says otherwise; none without
        authentication, where the one open tenant is every caller."""
        auth = self.auth
        if not (auth.keys or auth.keys_file or auth.admin_key or auth.admin_key_sha256):
            return None
        return self.sandbox.tenant_share()

    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'corral.db'}"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


class ConfigError(ValueError):
    """A configuration mistake, told in one line that names the flag, variable, file or YAML key."""


def load_settings(
    *,
    config_file: str | None = None,
    upstream_urls: list[str] | None = None,
    upstream_api: str | None = None,
    upstream_api_key: str | None = None,
    overrides: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
) -> Settings:
    """Merge the YAML file, then the simple flag values, into one validated Settings.

    `sources` names where each override came from (`--port`, `CORRAL_PORT`, and `upstreams` for the
    `--upstream` URLs), so that a bad value is reported against what the operator typed; anything
    else is reported as a key of the YAML file. Raises ConfigError, one message per line.
    """
    sources = dict(sources or {})
    if upstream_api is not None and upstream_api not in typing.get_args(UpstreamAPI):
        kinds = ", ".join(typing.get_args(UpstreamAPI))
        raise ConfigError(f"{sources.get('upstream_api', '--upstream-api')}: {upstream_api!r} is not one of {kinds}")
    data = _read_yaml(config_file, sources.get("config", "--config")) if config_file else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    if upstream_urls:
        data["upstreams"] = [
            {"url": url, "api": upstream_api or "auto", "api_key": upstream_api_key} for url in upstream_urls
        ]
    elif upstream_api or upstream_api_key:
        for upstream in data.get("upstreams", []):
            if upstream_api:
                upstream.setdefault("api", upstream_api)
            if upstream_api_key:
                upstream.setdefault("api_key", upstream_api_key)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(error, config_file, sources) for error in exc.errors())) from None


def _read_yaml(config_file: str, flag: str) -> dict[str, Any]:
    try:
        with open(config_file, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{flag} {config_file}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{flag} {config_file}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else config_file
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file}: the top level must be a mapping of settings, not {type(data).__name__}")
    return data


def _explain(error: Any, config_file: str | None, sources: dict[str, str]) -> str:
    loc = tuple(error["loc"])
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    source = sources.get(str(loc[0])) if loc else None
    if source is not None and (loc[0] != "upstreams" or len(loc) < 3 or loc[2] in ("url", "api", "api_key")):
        where = source
    elif config_file:
        where = f"{config_file}: key '{key}'"
    else:
        where = f"setting '{key}'"
    if error["type"] == "extra_forbidden":
        known = _field_names(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(sorted(known))})"
        return f"{where}: unknown setting{hint}"
    message = error["msg"][0].lower() + error["msg"][1:]
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{where}: {message}{shown}"


def _field_names(path: tuple[Any, ...]) -> list[str]:
    """The settings one level under `path` (e.g. ('sandbox',) -> SandboxSettings' fields)."""
    model: type[BaseModel] | None = Settings
    skip_key = False
    for part in path:
        if isinstance(part, int) or skip_key:
            skip_key = False
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = _model_in(field.annotation)
        skip_key = typing.get_origin(field.annotation) is dict
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside an annotation such as `list[X]`, `dict[str, X]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
