"""Compaction: a conversation's window replaced by its user messages and one `compaction` item.

The summary the item stands for is written by the request's own upstream model, from a plain
transcript of the window (a transcript, not replayed tool calls: every chat template takes it,
whatever tools the conversation used). The item's `encrypted_content` seals that summary
(`corral.responses.sealed`); when the item comes back, in a later request's input or in a
replayed chain, the model is sent the user's messages, the summary, and what followed it
(`corral.responses.history.replay_window`).

Two ways in: `POST /v1/responses/compact` returns the compacted window, and a create request
with `context_management: [{type: "compaction", compact_threshold}]` compacts on its own when
its window passes the threshold: before the first model call (the compaction item is then its
first output item), and between tool-loop turns, when the calls and their outputs have made the
window too long (the item then follows those calls, and they are no longer sent to the model).
"""

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import orjson

from corral.protocol.compact import validate_compact_body
from corral.protocol.errors import APIError, bad_request
from corral.protocol.ids import new_id
from corral.protocol.items import output_text
from corral.protocol.request import CreateResponseBody
from corral.protocol.response import add_usage, zero_usage
from corral.protocol.vocabulary import EventType, ItemType
from corral.responses.context import RequestContext
from corral.responses.history import open_request, replay_window, resolve_references
from corral.responses.sealed import cipher, seal
from corral.storage import Store
from corral.upstream.registry import UpstreamRegistry

SUMMARY_REQUEST = "Summarize the conversation below."
"""The opening of the summary request (the scripted upstream recognises it)."""
SUMMARY_INSTRUCTIONS = (
    "You compact conversations between a user and an assistant. Write a summary that lets the "
    "assistant carry on without the original: the user's goals and requests, what was decided, "
    "facts and results learned (tool calls and their outcomes that still matter), files and names "
    "involved, and what remains to be done. Write only the summary, in plain prose."
)
SUMMARY_MAX_OUTPUT_TOKENS = 2048
DEFAULT_COMPACT_THRESHOLD = 100_000
"""Input tokens past which `context_management` compacts when it gives no `compact_threshold`."""
_ITEM_TEXT_LIMIT = 8000
"""Characters of one item kept in the summary's transcript (a tool output can be megabytes)."""


_CALL_OUTPUTS = frozenset(
    (
        ItemType.FUNCTION_CALL_OUTPUT,
        ItemType.CUSTOM_TOOL_CALL_OUTPUT,
        ItemType.SHELL_CALL_OUTPUT,
        ItemType.LOCAL_SHELL_CALL_OUTPUT,
    )
)
_LEFT_OUT = frozenset((ItemType.REASONING, ItemType.COMPACTION, ItemType.MCP_LIST_TOOLS, ItemType.ITEM_REFERENCE))
"""Items a transcript leaves out: nothing the summary needs, or nothing readable."""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text") or part.get("refusal") or "") for part in content if isinstance(part, dict)
        )
    return "" if content is None else orjson.dumps(content).decode()


def _line(item: dict[str, Any]) -> str | None:
    kind = item.get("type", ItemType.MESSAGE)
    if kind == ItemType.MESSAGE:
        return f"{item.get('role', 'user')}: {_text(item.get('content'))}"
    if kind == ItemType.FUNCTION_CALL:
        return f"assistant called {item.get('name')}({item.get('arguments', '')})"
    if kind in _CALL_OUTPUTS:
        return f"tool result for {item.get('call_id') or item.get('id')}: {_text(item.get('output'))}"
    if kind == ItemType.MCP_CALL:
        return f"assistant called {item.get('server_label')}.{item.get('name')}({item.get('arguments', '')}): " + (
            _text(item.get("output")) or _text(item.get("error"))
        )
    if kind == ItemType.CODE_INTERPRETER_CALL:
        return f"assistant ran Python:\n{item.get('code') or ''}\nresult: {_text(item.get('outputs'))}"
    if kind == ItemType.SHELL_CALL:
        return f"assistant ran shell commands: {_text((item.get('action') or {}).get('commands'))}"
    if kind in _LEFT_OUT:
        return None
    return f"{kind}: {orjson.dumps(item).decode()}"


def transcript(items: list[dict[str, Any]], *, limit: int | None = _ITEM_TEXT_LIMIT) -> str:
    lines = []
    for item in items:
        line = _line(item)
        if line is None:
            continue
        if limit is not None and len(line) > limit:
            line = line[:limit] + " […]"
        lines.append(line)
    return "\n\n".join(lines)


async def summarize(
    ctx: RequestContext, window: list[dict[str, Any]], instructions: Any
) -> tuple[str, dict[str, Any] | None]:
    """The summary of `window` by the request's upstream model, and that call's usage."""
    assert ctx.route is not None
    system = SUMMARY_INSTRUCTIONS
    if isinstance(instructions, str) and instructions:
        system += f"\n\nThe assistant works under these instructions:\n{instructions}"
    request = {
        "model": ctx.route.upstream_model,
        "instructions": system,
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"{SUMMARY_REQUEST}\n\n<conversation>\n{transcript(window)}\n</conversation>",
                    }
                ],
            }
        ],
        "max_output_tokens": SUMMARY_MAX_OUTPUT_TOKENS,
    }
    result = await ctx.route.adapter.create(request, ctx.client_key)
    summary = output_text(result.output).strip()
    if result.status == "failed" or not summary:
        raise APIError(
            502, "The model did not write a summary for compaction.", type="server_error", code="upstream_error"
        )
    return summary, result.usage


async def new_compaction_item(store: Store, ctx: RequestContext, summary: str) -> dict[str, Any]:
    payload = {"summary": summary, "model": ctx.body.model, "created_at": int(time.time())}
    return {
        "type": ItemType.COMPACTION,
        "id": new_id("cmp"),
        "encrypted_content": seal(await cipher(store), ctx.tenant, payload),
    }


async def compact(
    store: Store,
    registry: UpstreamRegistry,
    raw: Any,
    *,
    tenant: str,
    headers: Mapping[str, str],
    client_key: str | None,
) -> dict[str, Any]:
    """`POST /v1/responses/compact`: the window's user messages, then one compaction item for
    all of it. Nothing is stored."""
    body = validate_compact_body(raw)
    ctx = await open_request(body, store, tenant=tenant, headers=headers, client_key=client_key)
    history, caller = replay_window(ctx)
    window = [*history, *caller]
    if not window:
        raise bad_request("There is nothing to compact: give `input` or `previous_response_id`.", param="input")
    ctx.route = await registry.route(body.model, key=ctx.body.prompt_cache_key)
    summary, usage = await summarize(ctx, window, body.instructions)
    item = await new_compaction_item(store, ctx, summary)
    kept = [_user_message(item) for item in replay_users(ctx)]
    return {
        "id": ctx.response_id,
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": [*kept, item],
        "usage": add_usage(None, usage) or zero_usage(),
    }


def replay_users(ctx: RequestContext) -> list[dict[str, Any]]:
    """The user's messages of the window as the caller and the history hold them (resolved
    references included), so that no earlier summary shows through."""
    window = [*ctx.history, *resolve_references(ctx, ctx.input_items)]
    return [item for item in window if item.get("type", "message") == "message" and item.get("role") == "user"]


def _user_message(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item.get("id") or new_id("msg"),
        "role": "user",
        "content": item["content"],
        "status": item.get("status") or "completed",
    }


def threshold(body: CreateResponseBody) -> int | None:
    for entry in body.context_management or ():
        if entry.type == "compaction":
            return entry.compact_threshold or DEFAULT_COMPACT_THRESHOLD
    return None


def _count(instructions: Any, window: list[dict[str, Any]]) -> int:
    # Imported here: the counting module imports the service, which imports this module.
    from corral.responses.input_tokens import count_locally

    messages = [{"role": "user", "content": transcript(window, limit=None)}]
    if isinstance(instructions, str):
        messages.insert(0, {"role": "system", "content": instructions})
    return count_locally(messages, [])


async def compact_if_needed(ctx: RequestContext, store: Store) -> None:
    """`context_management`: compact the window before a model call when its tokens (counted
    locally, tiktoken's cl100k_base) reach the threshold and it holds anything but user messages.
    The window is the history, the caller's input and this response's tool-loop items so far."""
    limit = threshold(ctx.body)
    if limit is None:
        return
    history, caller = replay_window(ctx)
    window = [*history, *caller, *ctx.loop_items[ctx.folded :]]
    foldable = any(not (item.get("type", "message") == "message" and item.get("role") == "user") for item in window)
    if not foldable or await asyncio.to_thread(_count, ctx.body.instructions, window) < limit:
        return
    summary, usage = await summarize(ctx, window, ctx.body.instructions)
    item = await new_compaction_item(store, ctx, summary)
    ctx.summaries[id(item)] = summary
    ctx.compacted = item
    ctx.folded = len(ctx.loop_items)
    response = ctx.response
    response.add_usage(usage)
    index = await response.add_item({**item, "encrypted_content": ""})
    await response.item_event(EventType.COMPACTION_COMPACTING, index)
    await response.done_item(index, item)
