"""Stage 3: the replayed history (a `previous_response_id` chain or a conversation's items).

`ctx.history` is kept as stored; what the model is sent of it is `replay_window`, where the
latest `compaction` item stands for everything before it except the user's messages.
"""

from collections.abc import Mapping
from typing import Any

from corral.protocol.errors import bad_request, not_found
from corral.protocol.ids import new_id
from corral.protocol.items import normalize_input
from corral.protocol.request import CreateResponseBody
from corral.responses.context import RequestContext
from corral.responses.sealed import open_compactions
from corral.storage import NotFound, Store

SUMMARY_PREFIX = "Summary of the earlier conversation, which it replaces:\n\n"

_CALL_OUTPUTS = {
    "function_call_output": ("function_call", "function"),
    "shell_call_output": ("shell_call", "shell"),
}


async def open_request(
    body: CreateResponseBody,
    store: Store,
    *,
    tenant: str,
    headers: Mapping[str, str],
    client_key: str | None,
    memory: Mapping[str, list[dict[str, Any]]] | None = None,
) -> RequestContext:
    """A validated body's context: the caller's input normalised, the chain or conversation loaded,
    and the input checked against it (a tool output answers a call in context)."""
    conversation = body.conversation
    ctx = RequestContext(
        body=body,
        tenant=tenant,
        headers=headers,
        response_id=new_id("resp"),
        input_items=normalize_input(body.input),
        conversation_id=conversation if isinstance(conversation, str) or conversation is None else conversation.id,
        client_key=client_key,
    )
    await load_history(ctx, store, memory)
    check_input_against_history(ctx)
    return ctx


async def load_history(
    ctx: RequestContext, store: Store, memory: Mapping[str, list[dict[str, Any]]] | None = None
) -> None:
    """The chain or the conversation, and the compaction items in it opened.

    `memory` holds chains that live only in a WebSocket connection (its `store: false`
    responses), looked up before the database.
    """
    previous = ctx.body.previous_response_id
    if previous and memory is not None and previous in memory:
        ctx.history = list(memory[previous])
    elif previous:
        try:
            ctx.history = await store.responses.load_chain(ctx.tenant, previous)
        except NotFound:
            raise bad_request(
                f"Previous response with id '{ctx.body.previous_response_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            ) from None
    elif ctx.conversation_id:
        try:
            ctx.history = await store.conversations.load_items(ctx.tenant, ctx.conversation_id)
        except NotFound:
            raise not_found(f"Conversation with id '{ctx.conversation_id}' not found.", param="conversation") from None
    await open_compactions(ctx, store)


def check_input_against_history(ctx: RequestContext) -> None:
    """Tool outputs must answer a call in context; items already in the chain must not be resent."""
    known_ids = {item.get("id") for item in ctx.history if item.get("id")}
    call_ids: set[str] = set()
    for item in ctx.history:
        if "call_id" in item and item.get("type") in ("function_call", "shell_call", "local_shell_call"):
            call_ids.add(item["call_id"])
    for item in ctx.input_items:
        item_type = item.get("type")
        if item_type in ("function_call", "shell_call", "local_shell_call") and "call_id" in item:
            call_ids.add(item["call_id"])
    for item in ctx.input_items:
        item_type = item.get("type")
        if ctx.body.previous_response_id and item.get("id") in known_ids and item_type != "item_reference":
            raise bad_request(
                f"Duplicate item found with id {item['id']}. Remove duplicate items from your input and try again.",
                param="input",
            )
        if item_type in _CALL_OUTPUTS and item["call_id"] not in call_ids:
            word = _CALL_OUTPUTS[item_type][1]
            raise bad_request(
                f"No tool call found for {word} call output with call_id {item['call_id']}.", param="input"
            )


def resolve_references(ctx: RequestContext, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`item_reference` inputs replaced by the referenced history item, and items whose file parts
    were resolved for the upstream by their resolved copies."""
    if ctx.resolved_inputs:
        items = [ctx.resolved_inputs.get(id(item), item) for item in items]
    if not any(item.get("type") == "item_reference" for item in items):
        return items
    by_id = {item.get("id"): item for item in ctx.history}
    resolved = []
    for item in items:
        if item.get("type") == "item_reference":
            target = by_id.get(item["id"])
            if target is None:
                raise bad_request(f"Item with id '{item['id']}' not found.", param="input")
            resolved.append(target)
        else:
            resolved.append(item)
    return resolved


def _is_user_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "user"


def summary_message(summary: str) -> dict[str, Any]:
    """What a compaction item is replayed as: a user message, which every chat template takes
    anywhere in a conversation (a system message in the middle is refused by some)."""
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": SUMMARY_PREFIX + summary}]}


def replay_window(ctx: RequestContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The history and the caller's input as the model sees them, `item_reference`s resolved.

    The latest compaction item of the window (the caller's, the history's or this response's
    own) stands for everything before it but the user's messages: those are kept, and its
    summary takes the place of the last item it replaced, so that the user's messages that came
    after that item (the question being asked, often) still come after the summary.
    """
    caller = resolve_references(ctx, ctx.input_items)
    trailing = [*ctx.loop_items[: ctx.folded], ctx.compacted] if ctx.compacted is not None else []
    window = [*ctx.history, *caller, *trailing]
    cut = next((n for n in range(len(window) - 1, -1, -1) if window[n].get("type") == "compaction"), None)
    if cut is None:
        return ctx.history, caller
    summary = ctx.summaries.get(id(window[cut]))
    if summary is None:
        raise bad_request("A compaction item of this request could not be opened.", param="input")
    anchor = next((n for n in range(cut - 1, -1, -1) if not _is_user_message(window[n])), cut)
    parts: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for position, item in enumerate(window):
        part = parts[0] if position < len(ctx.history) else parts[1]
        if position == anchor:
            part.append(summary_message(summary))
        elif position > cut or (position < cut and _is_user_message(item)):
            part.append(item)
    return parts
