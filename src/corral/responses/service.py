"""One request's life, stage by stage (architecture guide §2).

`prepare` runs stages 1-5 (validate, history, route + preflight, tools, bootstrap): everything
that can reject a request happens there, before any model call or stored byte. `execute` runs the
tool loop, emits, and persists (stages 6-8).
"""

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from corral.protocol.errors import APIError, public_error, public_message
from corral.protocol.request import validate_create_body
from corral.protocol.response import new_response
from corral.responses.bootstrap import bootstrap_stateful_tools
from corral.responses.builder import ResponseBuilder
from corral.responses.compaction import compact_if_needed
from corral.responses.context import RequestContext
from corral.responses.execution import build_execution_request
from corral.responses.file_inputs import resolve_file_inputs
from corral.responses.history import open_request
from corral.responses.loop import run_tool_loop
from corral.responses.persist import persist
from corral.sessions.files import FileService
from corral.sessions.stateful_tools import StatefulToolBootstrapper, declared_stateful_tools
from corral.storage import Store
from corral.tools.base import ServerTool
from corral.upstream.errors import UpstreamError, UpstreamStreamError
from corral.upstream.metrics import UPSTREAM_ERRORS
from corral.upstream.registry import UpstreamRegistry

log = logging.getLogger(__name__)


class ToolFactory(Protocol):
    async def build(self, ctx: RequestContext) -> list[ServerTool]:
        """Server-side tools for this request; raises APIError(400) for a bad declaration."""
        ...

    def bind(self, ctx: RequestContext) -> None:
        """Hand the tools the state bootstrap prepared (e.g. their container)."""
        ...


def affinity_key(ctx: RequestContext) -> str | None:
    """What keeps one conversation on one worker: the conversation, else the chain's first item,
    else the caller's prompt_cache_key or safety_identifier."""
    if ctx.conversation_id:
        return ctx.conversation_id
    if ctx.history and ctx.history[0].get("id"):
        return str(ctx.history[0]["id"])
    if ctx.input_items and ctx.input_items[0].get("id") and not ctx.body.prompt_cache_key:
        return str(ctx.input_items[0]["id"])
    return ctx.body.prompt_cache_key or ctx.body.safety_identifier


class ResponsesService:
    def __init__(
        self,
        *,
        store: Store,
        registry: UpstreamRegistry,
        bootstrapper: StatefulToolBootstrapper,
        tools: ToolFactory,
        max_tool_calls: int,
        files: FileService | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.registry = registry
        self.bootstrapper = bootstrapper
        self.tools = tools
        self.max_tool_calls = max_tool_calls

    async def prepare(
        self,
        raw: Any,
        *,
        tenant: str,
        headers: Mapping[str, str],
        client_key: str | None = None,
        memory: Mapping[str, list[dict[str, Any]]] | None = None,
    ) -> RequestContext:
        """`memory`: chains kept only by a WebSocket connection, by response id (`load_history`)."""
        body = validate_create_body(raw)
        ctx = await open_request(body, self.store, tenant=tenant, headers=headers, client_key=client_key, memory=memory)
        ctx.route = await self.registry.route(body.model, key=affinity_key(ctx), caller=ctx.tenant)
        await resolve_file_inputs(ctx, self.files)
        if not ctx.passthrough:
            ctx.stateful_tools = declared_stateful_tools(body.tools)
        ctx.server_tools = await self.tools.build(ctx)
        if ctx.route.adapter.checks_requests:
            ctx.route.adapter.preflight(build_execution_request(ctx))
        await bootstrap_stateful_tools(ctx, self.bootstrapper, self.store)
        self.tools.bind(ctx)
        ctx.builder = ResponseBuilder(new_response(ctx.response_id, body, conversation_id=ctx.conversation_id))
        return ctx

    async def execute(self, ctx: RequestContext) -> dict[str, Any]:
        """Run the loop to a final status, persist, then emit the terminal events; returns the
        Response object.

        Persisting comes first so that a client that sees the end of the stream can already
        retrieve the stored response.
        """
        response = ctx.response
        failure: tuple[str, str] | None = None
        try:
            await compact_if_needed(ctx, self.store)
            last = await run_tool_loop(
                ctx, gateway_cap=self.max_tool_calls, between_turns=lambda: compact_if_needed(ctx, self.store)
            )
        except UpstreamError as exc:
            self._count_error(ctx, "http")
            if not response.started and not response.output:
                raise
            failure = (exc.code or "server_error", public_error(exc).message)
        except UpstreamStreamError as exc:
            self._count_error(ctx, "stream")
            failure = (exc.code or "server_error", public_message(exc.code, exc.message))
        except APIError:
            raise
        except Exception as exc:
            log.exception("response %s failed", ctx.response_id)
            failure = ("server_error", public_message("server_error", str(exc)))
        else:
            response.settle(last)
        if failure is not None:
            response.fail(*failure)
        await persist(ctx, self.store)
        if failure is not None:
            await response.error(failure[1], failure[0])
        await response.finish()
        return response.object

    async def prepare_only(self, ctx: RequestContext) -> dict[str, Any]:
        """A response made without a model call (WebSocket `generate: false`): tools prepared and
        input stored, to be continued by a later `previous_response_id`."""
        response = ctx.response
        await response.start()
        response.complete_without_generation()
        await persist(ctx, self.store)
        await response.finish()
        return response.object

    def _count_error(self, ctx: RequestContext, kind: str) -> None:
        upstream = ctx.route.worker.name if ctx.route else "unknown"
        UPSTREAM_ERRORS.labels(upstream=upstream, kind=kind).inc()
