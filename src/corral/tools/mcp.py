"""MCP tools for the engine: OpenAI's `mcp_list_tools`, `mcp_call` and `mcp_approval_request` items.

A request declares MCP servers as tools (`{"type": "mcp", "server_label", "server_url", …}`), or
names a server the operator configured (`{"type": "mcp", "server_label": "X"}` with no
`server_url`). Corral lists each server's tools (once per conversation: a listing already in the
replayed history is reused), offers the allowed ones to the model as function tools, runs the
calls the model makes, and asks for the client's approval first where `require_approval` says so.

Everything above the `McpTool` class is pure (no I/O) except `execute_calls`. Declarations,
transports and filters are `corral.tools.mcp_declarations`; transport, sessions and the tool-list
cache live in `corral.tools.mcp_client`.
"""

import asyncio
import hashlib
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from corral.protocol.errors import bad_request
from corral.protocol.events import OutputWriter
from corral.protocol.hosted_tools import mcp_error_text
from corral.protocol.ids import new_item_id
from corral.protocol.vocabulary import EventType
from corral.tools.base import ToolCall, ToolOutcome
from corral.tools.mcp_client import (
    McpCallOutcome,
    McpServerSpec,
    McpUnavailable,
    call_tool,
    list_tools,
)
from corral.tools.mcp_declarations import (
    ApprovalPolicy,
    McpToolDecl,
    ToolFilter,
    config_server,
    is_allowed,
    is_read_only,
    needs_approval,
    parse_mcp_tool,
    parse_mcp_tools,
    transport_for_url,
)

log = logging.getLogger(__name__)

__all__ = [
    "DENIED",
    "ApprovalPolicy",
    "McpCallOutcome",
    "McpServerSpec",
    "McpTool",
    "McpToolDecl",
    "PlannedCall",
    "ToolFilter",
    "approval_request_item",
    "approval_responses",
    "call_item",
    "call_item_in_progress",
    "config_server",
    "execute_calls",
    "find_approval_request",
    "function_name_for",
    "function_tools",
    "is_allowed",
    "is_read_only",
    "list_tools_item",
    "listed_labels",
    "model_output",
    "needs_approval",
    "parse_arguments",
    "parse_mcp_tool",
    "parse_mcp_tools",
    "tools_from_history",
    "transport_for_url",
]

DENIED = "The user denied this tool call."
INVALID_PARAMS = -32602
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


# --- function tools for the model ---------------------------------------------------------------


def _clean_name(name: str) -> str:
    cleaned = _NOT_NAME_CHARS.sub("_", name)[:64]
    return cleaned or "tool"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()
    for length in range(6, 65):
        candidate = f"{name[: 64 - length - 1]}_{digest[:length]}"
        if candidate not in taken:
            return candidate
    raise ValueError(f"no unique function name for {name!r}")  # pragma: no cover - 2**256 names


def _parameters(schema: Any) -> dict[str, Any]:
    parameters = dict(schema) if isinstance(schema, Mapping) else {}
    parameters.setdefault("type", "object")
    if parameters.get("type") == "object":
        parameters.setdefault("properties", {})
    return parameters


def function_tools(
    servers: Sequence[tuple[McpToolDecl, Sequence[Mapping[str, Any]]]],
    *,
    reserved: Collection[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """The function tools to offer the model for these servers' allowed tools, and the map
    function name → (server_label, tool_name).

    A function is named after its tool; only names that collide (across servers, or with
    `reserved`: the names of the request's other functions) become `<label>__<name>`. Names are
    made valid for upstreams (`^[a-zA-Z0-9_-]{1,64}$`) and unique.
    """
    candidates: list[tuple[McpToolDecl, Mapping[str, Any]]] = [
        (decl, tool) for decl, tools in servers for tool in tools if is_allowed(decl, tool)
    ]
    counts: dict[str, int] = {}
    for _decl, tool in candidates:
        base = _clean_name(str(tool.get("name", "")))
        counts[base] = counts.get(base, 0) + 1
    taken = set(reserved)
    functions: list[dict[str, Any]] = []
    names: dict[str, tuple[str, str]] = {}
    for decl, tool in candidates:
        tool_name = str(tool.get("name", ""))
        base = _clean_name(tool_name)
        if counts[base] > 1 or base in taken:
            base = _clean_name(f"{decl.label}__{tool_name}")
        name = _unique(base, taken)
        taken.add(name)
        names[name] = (decl.label, tool_name)
        functions.append(
            {
                "type": "function",
                "name": name,
                "description": tool.get("description") or "",
                "parameters": _parameters(tool.get("input_schema")),
                "strict": False,
            }
        )
    return functions, names


def function_name_for(names: Mapping[str, tuple[str, str]], label: str, tool_name: str) -> str | None:
    """The function name standing for `label`'s tool `tool_name` (for `tool_choice` and resumed
    approvals), or None when it is not offered."""
    for name, target in names.items():
        if target == (label, tool_name):
            return name
    return None


# --- items --------------------------------------------------------------------------------------


def _listed_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": tool.get("name"),
        "description": tool.get("description"),
        "input_schema": tool.get("input_schema") or {"type": "object", "properties": {}},
        "annotations": tool.get("annotations"),
    }


def list_tools_item(
    label: str,
    tools: Iterable[Mapping[str, Any]],
    error: str | None = None,
    *,
    item_id: str | None = None,
) -> dict[str, Any]:
    """An `mcp_list_tools` item (`id` "mcpl_…"; pass `item_id` to finish a skeleton announced earlier)."""
    return {
        "type": "mcp_list_tools",
        "id": item_id or new_item_id("mcp_list_tools"),
        "server_label": label,
        "tools": [_listed_tool(tool) for tool in tools],
        "error": error,
    }


def call_item_in_progress(
    label: str, name: str, *, approval_request_id: str | None = None, item_id: str | None = None
) -> dict[str, Any]:
    """The `mcp_call` skeleton for `response.output_item.added` (empty arguments, no output)."""
    return {
        "type": "mcp_call",
        "id": item_id or new_item_id("mcp_call"),
        "server_label": label,
        "name": name,
        "arguments": "",
        "output": None,
        "error": None,
        "status": "in_progress",
        "approval_request_id": approval_request_id,
    }


def call_item(
    label: str,
    name: str,
    arguments_json: str,
    outcome: McpCallOutcome,
    approval_request_id: str | None = None,
    *,
    item_id: str | None = None,
) -> dict[str, Any]:
    """A finished `mcp_call` item: `status` "completed" with `output`, or "failed" with `error`."""
    return {
        **call_item_in_progress(label, name, approval_request_id=approval_request_id, item_id=item_id),
        "arguments": arguments_json,
        "output": outcome.output if outcome.error is None else None,
        "error": outcome.error,
        "status": "completed" if outcome.error is None else "failed",
    }


def approval_request_item(label: str, name: str, arguments_json: str) -> dict[str, Any]:
    """An `mcp_approval_request` item (`id` "mcpr_…"); the response ends after it."""
    return {
        "type": "mcp_approval_request",
        "id": new_item_id("mcp_approval_request"),
        "server_label": label,
        "name": name,
        "arguments": arguments_json,
    }


def model_output(outcome: McpCallOutcome) -> str:
    """What the model sees as the call's result: the output, or the error as text."""
    return outcome.output if outcome.error is None and outcome.output is not None else mcp_error_text(outcome.error)


# --- history ------------------------------------------------------------------------------------


def _latest_listing(history: Iterable[Mapping[str, Any]], label: str) -> Mapping[str, Any] | None:
    found = None
    for item in history:
        if item.get("type") == "mcp_list_tools" and item.get("server_label") == label and not item.get("error"):
            found = item
    return found


def listed_labels(history_items: Iterable[Mapping[str, Any]]) -> set[str]:
    """Labels with a successful `mcp_list_tools` in the history (a failed listing is retried)."""
    return {
        str(item.get("server_label"))
        for item in history_items
        if item.get("type") == "mcp_list_tools" and not item.get("error")
    }


def tools_from_history(history_items: Iterable[Mapping[str, Any]], label: str) -> list[dict[str, Any]] | None:
    """The tools of the latest successful listing of `label` in the history, or None."""
    item = _latest_listing(history_items, label)
    if item is None:
        return None
    return [_listed_tool(tool) for tool in item.get("tools") or [] if isinstance(tool, Mapping)]


def find_approval_request(history: Iterable[Mapping[str, Any]], approval_request_id: str) -> dict[str, Any] | None:
    """The `mcp_approval_request` item with this id, or None."""
    for item in history:
        if item.get("type") == "mcp_approval_request" and item.get("id") == approval_request_id:
            return dict(item)
    return None


def approval_responses(
    history: Sequence[Mapping[str, Any]], input_items: Sequence[Mapping[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(approval request, approval response) pairs the caller answers now, in input order.

    The request is looked for in the stored history and in the caller's own input: a stateless
    client (the Agents SDK, often with `store: false`) sends the `mcp_approval_request` back
    beside its answer instead of naming a `previous_response_id`. An `mcp_approval_response`
    naming no request of either is a 400 (`param` "input"); a request that already has its
    `mcp_call` (in either), or a stored answer, is skipped.
    """
    context = [*history, *input_items]
    answered = {item.get("approval_request_id") for item in history if item.get("type") == "mcp_approval_response"}
    answered.update(item.get("approval_request_id") for item in context if item.get("type") == "mcp_call")
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for item in input_items:
        if item.get("type") != "mcp_approval_response":
            continue
        request_id = item.get("approval_request_id")
        request = find_approval_request(context, str(request_id))
        if request is None:
            raise bad_request(f"No MCP approval request found with id '{request_id}'.", param="input")
        if request_id in answered:
            continue
        answered.add(request_id)
        pairs.append((request, dict(item)))
    return pairs


# --- running calls ------------------------------------------------------------------------------


def parse_arguments(arguments_json: str | Mapping[str, Any] | None) -> dict[str, Any] | McpCallOutcome:
    """The model's arguments as an object, or an error outcome (JSON-RPC INVALID_PARAMS)."""
    if arguments_json is None:
        return {}
    if isinstance(arguments_json, Mapping):
        return dict(arguments_json)
    if not arguments_json.strip():
        return {}
    try:
        parsed = orjson.loads(arguments_json)
    except orjson.JSONDecodeError as exc:
        message = f"The arguments are not valid JSON: {exc}"
        return McpCallOutcome(error={"type": "mcp_protocol_error", "code": INVALID_PARAMS, "message": message})
    if not isinstance(parsed, dict):
        message = "The arguments must be a JSON object."
        return McpCallOutcome(error={"type": "mcp_protocol_error", "code": INVALID_PARAMS, "message": message})
    return parsed


@dataclass
class PlannedCall:
    """One call to run: the server, the MCP tool name, the arguments (JSON text or an object)."""

    spec: McpServerSpec
    name: str
    arguments: str | Mapping[str, Any] | None
    timeout_s: float | None = None


async def _run_one(call: PlannedCall) -> McpCallOutcome:
    arguments = parse_arguments(call.arguments)
    if isinstance(arguments, McpCallOutcome):
        return arguments
    timeout_s = call.timeout_s if call.timeout_s is not None else call.spec.timeout_s
    return await call_tool(call.spec, call.name, arguments, timeout_s=timeout_s)


async def execute_calls(calls: Sequence[PlannedCall]) -> list[McpCallOutcome]:
    """Run the calls concurrently (each in its own task, with its own session); outcomes in order.
    One failing call never fails the others: any unexpected exception becomes that call's error."""
    results = await asyncio.gather(*(_run_one(call) for call in calls), return_exceptions=True)
    outcomes: list[McpCallOutcome] = []
    for call, result in zip(calls, results, strict=True):
        if isinstance(result, McpCallOutcome):
            outcomes.append(result)
        elif isinstance(result, Exception):
            log.exception("MCP call %r on server '%s' failed unexpectedly", call.name, call.spec.label, exc_info=result)
            message = f"The gateway failed to run the call: {type(result).__name__}"
            outcomes.append(McpCallOutcome(error={"type": "mcp_protocol_error", "code": -32603, "message": message}))
        else:
            raise result  # a cancellation or KeyboardInterrupt: not ours to swallow
    return outcomes


# --- the tool loop's adapter ---------------------------------------------------------------------


class McpTool:
    """All MCP servers of one request, as one `corral.tools.base.ServerTool` for the tool loop.

    `prepare` lists the servers not listed in the history (concurrently, announcing an
    `mcp_list_tools` item each) and resumes the calls the caller approves or denies now;
    `execute` runs one model call, or ends the response with an `mcp_approval_request`.
    """

    def __init__(
        self,
        declarations: Sequence[McpToolDecl],
        history: Sequence[Mapping[str, Any]],
        caller_input: Sequence[Mapping[str, Any]],
        *,
        reserved_names: Collection[str] = (),
    ) -> None:
        self.declarations = {decl.label: decl for decl in declarations}
        self.history = [*history, *caller_input]
        self.reserved_names = reserved_names
        self.tools: dict[str, dict[str, dict[str, Any]]] = {}
        self.functions: list[dict[str, Any]] = []
        self.names: dict[str, tuple[str, str]] = {}
        self.approvals = approval_responses(history, caller_input)

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        listings: dict[str, list[dict[str, Any]]] = {}
        to_list: list[McpToolDecl] = []
        for label, decl in self.declarations.items():
            known = tools_from_history(self.history, label)
            if known is None:
                to_list.append(decl)
            else:
                listings[label] = known
        if to_list:
            indexes = []
            for decl in to_list:
                skeleton = list_tools_item(decl.label, [])
                index = await emitter.add_item(dict(skeleton))
                await emitter.item_event(EventType.MCP_LIST_TOOLS_IN_PROGRESS, index)
                indexes.append((index, skeleton["id"]))
            results = await asyncio.gather(*(list_tools(decl.spec) for decl in to_list), return_exceptions=True)
            for decl, (index, item_id), result in zip(to_list, indexes, results, strict=True):
                if isinstance(result, BaseException):
                    if not isinstance(result, Exception):
                        raise result
                    error = result.message if isinstance(result, McpUnavailable) else "the listing failed"
                    if not isinstance(result, McpUnavailable):
                        log.error("listing MCP server '%s' failed", decl.label, exc_info=result)
                    await emitter.item_event(EventType.MCP_LIST_TOOLS_FAILED, index)
                    await emitter.done_item(index, list_tools_item(decl.label, [], error, item_id=item_id))
                    listings[decl.label] = []
                else:
                    await emitter.item_event(EventType.MCP_LIST_TOOLS_COMPLETED, index)
                    await emitter.done_item(index, list_tools_item(decl.label, result, item_id=item_id))
                    listings[decl.label] = [_listed_tool(tool) for tool in result]
        servers = [(self.declarations[label], listings.get(label, [])) for label in self.declarations]
        self.tools = {label: {str(tool["name"]): tool for tool in tools} for label, tools in listings.items()}
        self.functions, self.names = function_tools(servers, reserved=self.reserved_names)
        model_items: list[dict[str, Any]] = []
        for request, response in self.approvals:
            model_items += await self._resume(request, response, emitter)
        return model_items

    def function_tools(self) -> list[dict[str, Any]]:
        return self.functions

    def owns(self, name: str) -> bool:
        return name in self.names

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        label, tool_name = self.names[call.name]
        decl = self.declarations[label]
        if needs_approval(decl, self.tools[label][tool_name]):
            request = approval_request_item(label, tool_name, call.arguments)
            index = await emitter.add_item(request)
            await emitter.done_item(index, request)
            return ToolOutcome(items=[request], model_output="Waiting for the user's approval.", stop=True)
        item = await self._run(decl, tool_name, call.arguments, emitter, approval_request_id=None)
        return ToolOutcome(items=[item], model_output=_item_output(item))

    async def _run(
        self,
        decl: McpToolDecl,
        name: str,
        arguments: str,
        emitter: OutputWriter,
        *,
        approval_request_id: str | None,
    ) -> dict[str, Any]:
        skeleton = call_item_in_progress(decl.label, name, approval_request_id=approval_request_id)
        index = await emitter.add_item(dict(skeleton))
        await emitter.item_event(EventType.MCP_CALL_IN_PROGRESS, index)
        await emitter.item_event(EventType.MCP_CALL_ARGUMENTS_DELTA, index, delta=arguments)
        await emitter.item_event(EventType.MCP_CALL_ARGUMENTS_DONE, index, arguments=arguments)
        (outcome,) = await execute_calls([PlannedCall(decl.spec, name, arguments)])
        item = call_item(decl.label, name, arguments, outcome, approval_request_id, item_id=skeleton["id"])
        await emitter.item_event(
            EventType.MCP_CALL_COMPLETED if outcome.error is None else EventType.MCP_CALL_FAILED, index
        )
        await emitter.done_item(index, item)
        return item

    async def _resume(
        self, request: dict[str, Any], response: dict[str, Any], emitter: OutputWriter
    ) -> list[dict[str, Any]]:
        """An answered approval: run the call (or not), and show the model the call and its result."""
        label = str(request.get("server_label", ""))
        tool_name = str(request.get("name", ""))
        arguments = request.get("arguments") or "{}"
        call_id = str(request["id"])
        function_name = function_name_for(self.names, label, tool_name) or _clean_name(tool_name)
        model_call = {
            "type": "function_call",
            "call_id": call_id,
            "name": function_name,
            "arguments": arguments,
        }
        decl = self.declarations.get(label)
        tool = self.tools.get(label, {}).get(tool_name)
        if not response.get("approve"):
            reason = response.get("reason")
            text = DENIED + (f" Reason: {reason}" if reason else "")
        elif decl is None:
            text = f"Error: the MCP server '{label}' is not among this request's tools."
        elif tool is None or not is_allowed(decl, tool):
            text = f"Error: the tool '{tool_name}' is not available on the MCP server '{label}'."
        else:
            item = await self._run(decl, tool_name, arguments, emitter, approval_request_id=call_id)
            text = _item_output(item)
        return [model_call, {"type": "function_call_output", "call_id": call_id, "output": text}]


def _item_output(item: Mapping[str, Any]) -> str:
    return item["output"] if item.get("output") is not None else mcp_error_text(item.get("error"))
