"""MCP tools in the tool loop: OpenAI's `mcp_list_tools`, `mcp_call` and `mcp_approval_request`.

A request declares servers (`{"type": "mcp", "server_label", "server_url", …}`, or just a label
the operator configured). Their tools are offered to the model as functions; calls run on the
server; calls that need approval end the response with an `mcp_approval_request`, and the next
request's `mcp_approval_response` resumes them. A server already listed in the chain's history is
not listed again.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from corral.config import McpServerSettings
from corral.protocol.errors import bad_request
from corral.protocol.events import Emitter
from corral.protocol.hosted_tools import mcp_error_text
from corral.protocol.ids import new_item_id
from corral.tools.base import ToolCall, ToolOutcome
from corral.tools.mcp_client import McpCallOutcome, McpServerSpec, McpUnavailable, call_tool, list_tools

_FUNCTION_NAME = re.compile(r"[^a-zA-Z0-9_-]")
DENIED = "The user denied this tool call."


@dataclass
class McpDeclaration:
    label: str
    spec: McpServerSpec
    allowed: list[str] | None
    read_only_only: bool
    approval: Any


def _param(index: int, name: str) -> str:
    return f"tools[{index}].{name}"


def _filter(value: Any, where: str) -> tuple[list[str] | None, bool]:
    if value is None:
        return None, False
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return value, False
    if isinstance(value, dict):
        names = value.get("tool_names")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise bad_request(f"Invalid type for '{where}.tool_names': expected an array of strings.", param=where)
        return names, bool(value.get("read_only"))
    raise bad_request(f"Invalid type for '{where}': expected an array or an object.", param=where, code="invalid_type")


def parse_mcp_tool(
    declaration: Mapping[str, Any], index: int, configured: Mapping[str, McpServerSettings], *, timeout_s: float
) -> McpDeclaration:
    label = declaration.get("server_label")
    if not isinstance(label, str) or not label:
        raise bad_request(
            f"Missing required parameter: '{_param(index, 'server_label')}'.",
            param=_param(index, "server_label"),
            code="missing_required_parameter",
        )
    for unsupported in ("connector_id", "tunnel_id"):
        if declaration.get(unsupported):
            raise bad_request(
                f"'{unsupported}' is not supported by this gateway: give a server_url.",
                param=_param(index, unsupported),
            )
    headers = dict(declaration.get("headers") or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise bad_request(
            "Invalid type for 'headers': expected strings.", param=_param(index, "headers"), code="invalid_type"
        )
    authorization = declaration.get("authorization")
    if authorization is not None:
        if not isinstance(authorization, str):
            raise bad_request(
                "Invalid type for 'authorization'.", param=_param(index, "authorization"), code="invalid_type"
            )
        headers["Authorization"] = (
            authorization if authorization.lower().startswith("bearer ") else f"Bearer {authorization}"
        )
    url = declaration.get("server_url")
    if url is None:
        server = configured.get(label)
        if server is None:
            raise bad_request(
                f"Missing required parameter: '{_param(index, 'server_url')}' (no MCP server '{label}' is configured).",
                param=_param(index, "server_url"),
                code="missing_required_parameter",
            )
        spec = McpServerSpec(
            label=label,
            transport=server.transport,
            url=server.url,
            headers={**server.headers, **headers},
            command=server.command,
            args=tuple(server.args),
            env=server.env,
            timeout_s=server.timeout_s,
        )
    else:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad_request("Invalid 'server_url': expected an http(s) URL.", param=_param(index, "server_url"))
        transport = "sse" if url.rstrip("/").endswith("/sse") else "streamable_http"
        spec = McpServerSpec(label=label, transport=transport, url=url, headers=headers, timeout_s=timeout_s)
    allowed, read_only_only = _filter(declaration.get("allowed_tools"), _param(index, "allowed_tools"))
    approval = declaration.get("require_approval", "always")
    if approval is None:
        approval = "always"
    if not (approval in ("always", "never") or isinstance(approval, dict)):
        raise bad_request(
            f"Invalid value: '{approval}'. Supported values are: 'always' and 'never'.",
            param=_param(index, "require_approval"),
            code="invalid_value",
        )
    return McpDeclaration(label, spec, allowed, read_only_only, approval)


def _read_only(tool: Mapping[str, Any]) -> bool:
    annotations = tool.get("annotations") or {}
    return bool(annotations.get("readOnlyHint") or annotations.get("read_only_hint"))


def _matches(rule: Any, tool: Mapping[str, Any]) -> bool:
    if not isinstance(rule, dict):
        return False
    names = rule.get("tool_names")
    if names is not None and tool["name"] in names:
        return True
    return bool(rule.get("read_only")) and _read_only(tool)


def is_allowed(declaration: McpDeclaration, tool: Mapping[str, Any]) -> bool:
    if declaration.allowed is not None and tool["name"] not in declaration.allowed:
        return False
    return not declaration.read_only_only or _read_only(tool)


def needs_approval(declaration: McpDeclaration, tool: Mapping[str, Any]) -> bool:
    rule = declaration.approval
    if rule == "never":
        return False
    if rule == "always":
        return True
    if _matches(rule.get("never"), tool):
        return False
    if _matches(rule.get("always"), tool):
        return True
    return "never" in rule or "always" not in rule


def list_tools_item(label: str, tools: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    return {
        "type": "mcp_list_tools",
        "id": new_item_id("mcp_list_tools"),
        "server_label": label,
        "tools": tools,
        "error": error,
    }


class McpTool:
    """All MCP servers one request declares."""

    def __init__(
        self,
        declarations: list[McpDeclaration],
        history: list[dict[str, Any]],
        caller_input: list[dict[str, Any]],
        *,
        timeout_s: float,
    ) -> None:
        self.declarations = {declaration.label: declaration for declaration in declarations}
        self.history = history
        self.timeout_s = timeout_s
        self.functions: dict[str, tuple[McpDeclaration, dict[str, Any]]] = {}
        self.approvals = self._pending_approvals(caller_input)

    def _pending_approvals(self, caller_input: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(approval request, response) pairs the caller answers now; an unknown request id is a 400."""
        requests = {item.get("id"): item for item in self.history if item.get("type") == "mcp_approval_request"}
        answered = {item.get("approval_request_id") for item in self.history if item.get("type") == "mcp_call"}
        pending = []
        for item in caller_input:
            if item.get("type") != "mcp_approval_response":
                continue
            request_id = item["approval_request_id"]
            request = requests.get(request_id)
            if request is None:
                raise bad_request(f"No approval request found with id '{request_id}'.", param="input")
            if request_id not in answered:
                pending.append((request, item))
        return pending

    def _listed(self, label: str) -> list[dict[str, Any]] | None:
        for item in reversed(self.history):
            if item.get("type") == "mcp_list_tools" and item.get("server_label") == label and not item.get("error"):
                return list(item.get("tools") or [])
        return None

    async def prepare(self, emitter: Emitter) -> list[dict[str, Any]]:
        listings: dict[str, list[dict[str, Any]]] = {}
        for label, declaration in self.declarations.items():
            tools = self._listed(label)
            if tools is None:
                tools = await self._list(declaration, emitter)
            listings[label] = [tool for tool in tools if is_allowed(declaration, tool)]
        self._name_functions(listings)
        model_items: list[dict[str, Any]] = []
        for request, response in self.approvals:
            model_items += await self._resume(request, response, emitter)
        return model_items

    async def _list(self, declaration: McpDeclaration, emitter: Emitter) -> list[dict[str, Any]]:
        item = list_tools_item(declaration.label, [])
        index = await emitter.add_item(dict(item))
        await emitter.item_event("response.mcp_list_tools.in_progress", index)
        try:
            tools = await list_tools(declaration.spec)
        except McpUnavailable as exc:
            item["error"] = str(exc)
            await emitter.item_event("response.mcp_list_tools.failed", index)
            await emitter.done_item(index, item)
            return []
        item["tools"] = tools
        await emitter.item_event("response.mcp_list_tools.completed", index)
        await emitter.done_item(index, item)
        return tools

    def _name_functions(self, listings: dict[str, list[dict[str, Any]]]) -> None:
        counts: dict[str, int] = {}
        for tools in listings.values():
            for tool in tools:
                counts[tool["name"]] = counts.get(tool["name"], 0) + 1
        for label, tools in listings.items():
            for tool in tools:
                name = tool["name"] if counts[tool["name"]] == 1 else f"{label}__{tool['name']}"
                self.functions[_FUNCTION_NAME.sub("_", name)[:64]] = (self.declarations[label], tool)

    def function_tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "name": name,
                "description": tool.get("description") or "",
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
                "strict": False,
            }
            for name, (_declaration, tool) in self.functions.items()
        ]

    def owns(self, name: str) -> bool:
        return name in self.functions

    async def execute(self, call: ToolCall, emitter: Emitter) -> ToolOutcome:
        declaration, tool = self.functions[call.name]
        if needs_approval(declaration, tool):
            request = {
                "type": "mcp_approval_request",
                "id": new_item_id("mcp_approval_request"),
                "server_label": declaration.label,
                "name": tool["name"],
                "arguments": call.arguments,
            }
            index = await emitter.add_item(request)
            await emitter.done_item(index, request)
            return ToolOutcome(items=[request], model_output="Waiting for the user's approval.", stop=True)
        item = await self._run(declaration, tool["name"], call.arguments, emitter, approval_request_id=None)
        return ToolOutcome(items=[item], model_output=_model_text(item))

    async def _run(
        self,
        declaration: McpDeclaration,
        name: str,
        arguments: str,
        emitter: Emitter,
        *,
        approval_request_id: str | None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "mcp_call",
            "id": new_item_id("mcp_call"),
            "server_label": declaration.label,
            "name": name,
            "arguments": "",
            "output": None,
            "error": None,
            "approval_request_id": approval_request_id,
            "status": "in_progress",
        }
        index = await emitter.add_item(dict(item))
        await emitter.item_event("response.mcp_call.in_progress", index)
        await emitter.item_event("response.mcp_call_arguments.delta", index, delta=arguments)
        await emitter.item_event("response.mcp_call_arguments.done", index, arguments=arguments)
        try:
            parsed = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError as exc:
            outcome = McpCallOutcome(
                error={"type": "mcp_protocol_error", "code": -32602, "message": f"invalid JSON arguments: {exc}"}
            )
        else:
            outcome = await call_tool(
                declaration.spec, name, parsed if isinstance(parsed, dict) else {}, timeout_s=self.timeout_s
            )
        item.update(arguments=arguments, output=outcome.output, error=outcome.error)
        item["status"] = "failed" if outcome.error else "completed"
        await emitter.item_event("response.mcp_call.failed" if outcome.error else "response.mcp_call.completed", index)
        await emitter.done_item(index, item)
        return item

    async def _resume(
        self, request: dict[str, Any], response: dict[str, Any], emitter: Emitter
    ) -> list[dict[str, Any]]:
        """An answered approval: run the call (or not) and tell the model what happened."""
        call_id = request["id"]
        model_call = {
            "type": "function_call",
            "call_id": call_id,
            "name": request["name"],
            "arguments": request.get("arguments") or "{}",
        }
        declaration = self.declarations.get(request.get("server_label", ""))
        if not response.get("approve") or declaration is None:
            reason = response.get("reason")
            text = DENIED + (f" Reason: {reason}" if reason else "")
            return [model_call, {"type": "function_call_output", "call_id": call_id, "output": text}]
        item = await self._run(
            declaration, request["name"], request.get("arguments") or "{}", emitter, approval_request_id=request["id"]
        )
        return [model_call, {"type": "function_call_output", "call_id": call_id, "output": _model_text(item)}]


def _model_text(item: dict[str, Any]) -> str:
    return item["output"] if item.get("output") is not None else mcp_error_text(item.get("error"))
