"""Stage 3: the replayed history (a `previous_response_id` chain or a conversation's items)."""

from typing import Any

from corral.protocol.errors import bad_request, not_found
from corral.responses.context import RequestContext
from corral.storage import NotFound, Store

_CALL_OUTPUTS = {
    "function_call_output": ("function_call", "function"),
    "shell_call_output": ("shell_call", "shell"),
}


async def load_history(ctx: RequestContext, store: Store) -> None:
    if ctx.body.previous_response_id:
        try:
            ctx.history = await store.responses.load_chain(ctx.tenant, ctx.body.previous_response_id)
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
