"""Stage 8: store the persistence body (the caller's own input), the response, conversation items."""

import logging

from corral.responses.context import RequestContext
from corral.storage import Store

log = logging.getLogger(__name__)


_JOINS_CONVERSATION = frozenset(("completed", "incomplete"))
"""Final statuses whose input and output become conversation items."""


async def persist(ctx: RequestContext, store: Store) -> None:
    if not ctx.store:
        return
    response = ctx.response
    joins = ctx.conversation_id is not None and response.status in _JOINS_CONVERSATION
    conversation_items = [*ctx.input_items, *response.output] if joins else None
    joined = await store.responses.save(
        ctx.tenant,
        response.object,
        ctx.input_items,
        previous_response_id=ctx.body.previous_response_id,
        conversation_id=ctx.conversation_id,
        conversation_items=conversation_items,
    )
    if ctx.conversation_id and conversation_items is not None and not joined:
        await store.conversations.add_items(ctx.tenant, ctx.conversation_id, conversation_items)
