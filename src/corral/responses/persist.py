"""Stage 8: store the persistence body (the caller's own input), the response, conversation items."""

import logging

from corral.responses.context import RequestContext
from corral.storage import Store

log = logging.getLogger(__name__)


async def persist(ctx: RequestContext, store: Store) -> None:
    if not ctx.store:
        return
    await store.responses.save(
        ctx.tenant,
        ctx.response,
        ctx.input_items,
        previous_response_id=ctx.body.previous_response_id,
        conversation_id=ctx.conversation_id,
    )
    if ctx.conversation_id and ctx.response["status"] in ("completed", "incomplete"):
        await store.conversations.add_items(
            ctx.tenant, ctx.conversation_id, [*ctx.input_items, *ctx.response["output"]]
        )
