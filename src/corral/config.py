"""One settings object, layered from defaults, a YAML file, `CORRAL_…` environment variables and flags.

Precedence, lowest first: built-in defaults, the YAML file (`--config`), environment variables,
command-line flags. The YAML file holds everything the flags do and more (several upstreams with
their own API kind, key and model aliases; MCP servers; sandbox settings).
"""

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

UpstreamAPI = Literal["responses", "chat"]


class UpstreamSettings(BaseModel):
    """One upstream model server (a worker) speaking an OpenAI-compatible API."""

    model_config = ConfigDict(extra="forbid")

    url: str
    api: UpstreamAPI = "responses"
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

    backend: Literal["local", "hosts"] = Field(
        default="local",
        description="local: run sandboxes here (and, on a shared database, serve them to the other replicas); "
        "hosts: run none here, use the sandbox hosts announced in the database.",
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
    disk_mb: int = Field(default=1024, description="Each container's own disk (allocated in full); 0: no disk quota.")
    disk_reserve_mb: int = Field(default=1024, description="Free space a new container's disk must leave on the host.")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    upstreams: list[UpstreamSettings] = Field(default_factory=list)
    database: str | None = None
    auto_migrate: bool = Field(default=True, description="Run migrations at start (SQLite always does).")
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    log_level: str = "info"
    bootstrapper: str = "default"
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    mcp_timeout_s: float = 30.0
    max_tool_calls: int = 32
    max_body_bytes: int = Field(default=32 * 1024 * 1024, description="Largest request body accepted (413 above).")
    max_file_bytes: int = Field(
        default=512 * 1024 * 1024, description="Largest file accepted by POST /v1/files and per upload part."
    )
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'corral.db'}"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "corral"


def load_settings(
    *,
    config_file: str | None = None,
    upstream_urls: list[str] | None = None,
    upstream_api: str | None = None,
    upstream_api_key: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Merge the YAML file, then the simple flag values, into one validated Settings."""
    data: dict[str, Any] = {}
    if config_file:
        with open(config_file, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{config_file}: the top level must be a mapping")
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    if upstream_urls:
        data["upstreams"] = [
            {"url": url, "api": upstream_api or "responses", "api_key": upstream_api_key} for url in upstream_urls
        ]
    elif upstream_api or upstream_api_key:
        for upstream in data.get("upstreams", []):
            if upstream_api:
                upstream.setdefault("api", upstream_api)
            if upstream_api_key:
                upstream.setdefault("api_key", upstream_api_key)
    return Settings.model_validate(data)
