"""Stage 5: the stateful-tool bootstrap call site — exactly once, before the first model call."""

import logging
from types import MappingProxyType

from corral.protocol.errors import APIError, CorralError
from corral.responses.context import RequestContext
from corral.sessions.stateful_tools import BootstrapRequest, StatefulToolBootstrapper

log = logging.getLogger(__name__)

BOOTSTRAP_FAILED = "stateful_tool_bootstrap_failed"


def chain_key(ctx: RequestContext) -> str | None:
    """What identifies "the same chain" for container reuse and locking."""
    return ctx.conversation_id or ctx.body.previous_response_id


async def bootstrap_stateful_tools(
    ctx: RequestContext, bootstrapper: StatefulToolBootstrapper, storage: object
) -> None:
    """Prepare the declared stateful tools; on failure nothing in the context changes."""
    if not ctx.stateful_tools or ctx.bootstrap.executed:
        return
    assert ctx.route is not None
    request = BootstrapRequest(
        tools=ctx.stateful_tools,
        history=tuple(MappingProxyType(item) for item in ctx.history),
        headers=MappingProxyType(dict(ctx.headers)),
        tenant=ctx.tenant,
        storage=storage,
        response_id=ctx.response_id,
        model=ctx.body.model,
        chain_key=chain_key(ctx),
    )
    try:
        result = await bootstrapper.bootstrap(request)
    except CorralError as exc:
        raise exc.replace(code=BOOTSTRAP_FAILED) from exc
    except Exception as exc:
        log.exception("stateful tool bootstrap failed")
        raise APIError(
            500,
            f"Preparing the stateful tools failed: {exc}",
            type="server_error",
            code=BOOTSTRAP_FAILED,
        ) from exc
    ctx.bootstrap.record(result)
