"""MCP tool declarations: parsing a request's `{"type": "mcp", …}` tools (every rejection a 400 naming
its `param`), operator-configured servers, and the `allowed_tools` / `require_approval` filters.

Transport choice for a request's `server_url`: a URL whose path ends in `/sse` (a trailing slash
ignored) is an HTTP+SSE server (the 2024-11 transport); any other URL is Streamable HTTP.
Operator-configured servers state their transport (`streamable_http`, `sse` or `stdio`).

Filters (`allowed_tools`, and the `always` / `never` parts of `require_approval`) follow OpenAI's
`McpToolFilter`: `{tool_names?: [...], read_only?: bool}`, every given criterion must hold; a tool
is read-only when the server annotates it `readOnlyHint: true`. `require_approval` as an object:
a tool matching `always` needs approval (`always` wins when both match), else one matching `never`
does not; a tool matching neither needs approval unless only `always` was given.
"""

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from corral.protocol.errors import bad_request
from corral.tools.mcp_client import (
    DEFAULT_TIMEOUT_S,
    TRANSPORTS,
    McpServerSpec,
    Transport,
)

log = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FILTER_KEYS = frozenset({"tool_names", "read_only"})
_UNSUPPORTED = {
    "connector_id": "OpenAI connectors ('connector_id') are not supported by this gateway: "
    "give a 'server_url', or the 'server_label' of an MCP server configured by the operator.",
    "tunnel_id": "MCP tunnels ('tunnel_id') are not supported by this gateway: "
    "give a 'server_url', or the 'server_label' of an MCP server configured by the operator.",
}


# --- declarations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolFilter:
    """OpenAI's `McpToolFilter`: every criterion given must hold (`None` = not given)."""

    tool_names: tuple[str, ...] | None = None
    read_only: bool | None = None

    def matches(self, tool: Mapping[str, Any]) -> bool:
        if self.tool_names is not None and tool.get("name") not in self.tool_names:
            return False
        return self.read_only is None or is_read_only(tool) == self.read_only


@dataclass(frozen=True)
class ApprovalPolicy:
    """`require_approval`: `mode` "always" / "never", or "filter" with `always` / `never` filters."""

    mode: Literal["always", "never", "filter"] = "always"
    always: ToolFilter | None = None
    never: ToolFilter | None = None


@dataclass
class McpToolDecl:
    """One validated `{"type": "mcp"}` tool of a request.

    `spec` says how to reach the server (credentials included: never log it or echo it);
    `server_url` is the URL as the request gave it (None for an operator-configured server).
    """

    index: int
    label: str
    spec: McpServerSpec
    server_url: str | None = None
    server_description: str | None = None
    allowed_tools: ToolFilter | None = None
    require_approval: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    configured: bool = False

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s


def _param(index: int, name: str) -> str:
    return f"tools[{index}].{name}"


def _type_error(where: str, expected: str) -> Exception:
    return bad_request(f"Invalid type for '{where}': expected {expected}.", param=where, code="invalid_type")


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _type_error(where, "an array of strings")
    return tuple(value)


def _parse_filter(value: Any, where: str) -> ToolFilter | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ToolFilter(tool_names=_string_list(value, where))
    if not isinstance(value, dict):
        raise _type_error(where, "an array of tool names or an object")
    for key in value:
        if key not in _FILTER_KEYS:
            raise bad_request(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")
    names = value.get("tool_names")
    read_only = value.get("read_only")
    if read_only is not None and not isinstance(read_only, bool):
        raise _type_error(f"{where}.read_only", "a boolean")
    return ToolFilter(
        tool_names=None if names is None else _string_list(names, f"{where}.tool_names"), read_only=read_only
    )


def _parse_approval(value: Any, where: str) -> ApprovalPolicy:
    if value is None or value == "always":
        return ApprovalPolicy("always")
    if value == "never":
        return ApprovalPolicy("never")
    if isinstance(value, str):
        raise bad_request(
            f"Invalid value for '{where}': '{value}'. Supported values are: 'always' and 'never'.",
            param=where,
            code="invalid_value",
        )
    if not isinstance(value, dict):
        raise _type_error(where, "'always', 'never' or an object")
    for key in value:
        if key not in ("always", "never"):
            raise bad_request(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")
    always = _parse_filter(value.get("always"), f"{where}.always")
    never = _parse_filter(value.get("never"), f"{where}.never")
    return ApprovalPolicy("filter", always=always, never=never)


def _parse_headers(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(where, "an object of strings")
    for name, text in value.items():
        if not isinstance(text, str):
            raise _type_error(f"{where}.{name}", "a string")
        if not _HEADER_NAME.match(name):
            raise bad_request(f"Invalid header name in '{where}': '{name}'.", param=where, code="invalid_value")
        if "\r" in text or "\n" in text or "\0" in text:
            raise bad_request(
                f"Invalid value for header '{name}' in '{where}': line breaks are not allowed.",
                param=f"{where}.{name}",
                code="invalid_value",
            )
    return dict(value)


def _with_authorization(headers: dict[str, str], token: str) -> dict[str, str]:
    merged = {name: text for name, text in headers.items() if name.lower() != "authorization"}
    merged["Authorization"] = token if token[:7].lower() == "bearer " else f"Bearer {token}"
    return merged


def transport_for_url(url: str) -> Transport:
    """`sse` when the URL's path ends in `/sse` (trailing slash ignored), else `streamable_http`."""
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "streamable_http"


def _field(entry: Any, name: str, default: Any = None) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name, default)
    return getattr(entry, name, default)


def config_server(
    label: str,
    entry: Any,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> McpServerSpec:
    """A spec for an operator-configured server: `entry` is a `corral.config.McpServerSettings` or a
    mapping with `transport` (default `streamable_http`; `stdio` needs `command`, the others `url`),
    `headers`, `command`, `args`, `env`, `timeout_s`. A request's `headers` (and `authorization`,
    already folded into them) are sent on top of the configured ones (HTTP transports only).
    Raises ValueError on an incomplete entry."""
    transport = _field(entry, "transport") or "streamable_http"
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown MCP transport {transport!r}")
    configured_headers = dict(_field(entry, "headers") or {})
    if headers and transport != "stdio":
        lowered = {name.lower() for name in headers}
        configured_headers = {k: v for k, v in configured_headers.items() if k.lower() not in lowered}
        configured_headers.update(headers)
    return McpServerSpec(
        label=label,
        transport=cast(Transport, transport),
        url=_field(entry, "url"),
        headers=configured_headers,
        command=_field(entry, "command"),
        args=list(_field(entry, "args") or []),
        env=dict(_field(entry, "env")) if _field(entry, "env") is not None else None,
        timeout_s=float(timeout_s if timeout_s is not None else _field(entry, "timeout_s") or DEFAULT_TIMEOUT_S),
    )


def parse_mcp_tool(
    decl: Mapping[str, Any],
    index: int,
    configured: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> McpToolDecl:
    """Validate `tools[index]` (a `{"type": "mcp"}` declaration); raises a 400 `APIError` whose
    `param` is `tools[index].<field>`.

    Without `server_url` the label must name a server in `configured` (the operator's
    `Settings.mcp_servers`). `timeout_s` bounds listing and each call for a `server_url` server;
    a configured server uses its own `timeout_s`.
    """
    if not isinstance(decl, Mapping):
        raise _type_error(f"tools[{index}]", "an object")
    label = decl.get("server_label")
    if label is None or label == "":
        raise bad_request(
            f"Missing required parameter: '{_param(index, 'server_label')}'.",
            param=_param(index, "server_label"),
            code="missing_required_parameter",
        )
    if not isinstance(label, str):
        raise _type_error(_param(index, "server_label"), "a string")
    for name, message in _UNSUPPORTED.items():
        if decl.get(name) is not None:
            raise bad_request(message, param=_param(index, name), code="invalid_value")
    headers = _parse_headers(decl.get("headers"), _param(index, "headers"))
    authorization = decl.get("authorization")
    if authorization is not None:
        if not isinstance(authorization, str):
            raise _type_error(_param(index, "authorization"), "a string")
        if not authorization.strip() or any(c in authorization for c in "\r\n\0"):
            raise bad_request(
                f"Invalid value for '{_param(index, 'authorization')}'.",
                param=_param(index, "authorization"),
                code="invalid_value",
            )
        headers = _with_authorization(headers, authorization.strip())
    description = decl.get("server_description")
    if description is not None and not isinstance(description, str):
        raise _type_error(_param(index, "server_description"), "a string")
    allowed = _parse_filter(decl.get("allowed_tools"), _param(index, "allowed_tools"))
    approval = _parse_approval(decl.get("require_approval"), _param(index, "require_approval"))
    url = decl.get("server_url")
    if url is None:
        entry = (configured or {}).get(label)
        if entry is None:
            raise bad_request(
                f"Missing required parameter: '{_param(index, 'server_url')}' "
                f"(no MCP server labelled '{label}' is configured on this gateway).",
                param=_param(index, "server_url"),
                code="missing_required_parameter",
            )
        try:
            spec = config_server(label, entry, headers=headers)
        except ValueError as exc:
            log.error("MCP server '%s' is misconfigured: %s", label, exc)
            raise bad_request(
                f"The MCP server '{label}' is misconfigured on this gateway.",
                param=_param(index, "server_label"),
            ) from None
        configured_server = True
    else:
        if not isinstance(url, str):
            raise _type_error(_param(index, "server_url"), "a string")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request(
                f"Invalid value for '{_param(index, 'server_url')}': expected an http:// or https:// URL.",
                param=_param(index, "server_url"),
                code="invalid_value",
            )
        spec = McpServerSpec(
            label=label, transport=transport_for_url(url), url=url, headers=headers, timeout_s=timeout_s
        )
        configured_server = False
    return McpToolDecl(
        index=index,
        label=label,
        spec=spec,
        server_url=url,
        server_description=description,
        allowed_tools=allowed,
        require_approval=approval,
        configured=configured_server,
    )


def parse_mcp_tools(
    tools: Sequence[Mapping[str, Any]] | None,
    configured: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[McpToolDecl]:
    """Every `{"type": "mcp"}` tool of a request's `tools`, validated; labels must be unique."""
    decls: list[McpToolDecl] = []
    seen: set[str] = set()
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping) or tool.get("type") != "mcp":
            continue
        decl = parse_mcp_tool(tool, index, configured, timeout_s=timeout_s)
        if decl.label in seen:
            raise bad_request(
                f"Duplicate MCP server_label '{decl.label}': each MCP tool needs its own label.",
                param=_param(index, "server_label"),
                code="invalid_value",
            )
        seen.add(decl.label)
        decls.append(decl)
    return decls


# --- filters ------------------------------------------------------------------------------------


def is_read_only(tool: Mapping[str, Any]) -> bool:
    """Whether the server annotated the tool read-only (`readOnlyHint`, in any spelling we meet)."""
    annotations = tool.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return False
    return bool(annotations.get("readOnlyHint") or annotations.get("read_only_hint") or annotations.get("read_only"))


def is_allowed(decl: McpToolDecl, tool: Mapping[str, Any]) -> bool:
    """Whether `allowed_tools` lets the model see this tool."""
    return decl.allowed_tools is None or decl.allowed_tools.matches(tool)


def needs_approval(decl: McpToolDecl, tool: Mapping[str, Any]) -> bool:
    """Whether a call of this tool must wait for an `mcp_approval_response` (see the module doc)."""
    policy = decl.require_approval
    if policy.mode != "filter":
        return policy.mode == "always"
    if policy.always is not None and policy.always.matches(tool):
        return True
    if policy.never is not None and policy.never.matches(tool):
        return False
    return policy.never is not None or policy.always is None
