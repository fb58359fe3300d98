"""The request context: each stage's result, carried forward to the next."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.protocol.request import CreateResponseBody
from corral.responses.builder import ResponseBuilder
from corral.sessions.stateful_tools import BootstrapResult, StatefulToolDeclaration
from corral.tools.base import ServerTool
from corral.upstream.registry import Route


@dataclass
class BootstrapState:
    """Request-scoped: whether bootstrap ran, what it injected, and the prepared state per tool kind."""

    executed: bool = False
    injected_items: list[dict[str, Any]] = field(default_factory=list)
    prepared: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, result: BootstrapResult) -> None:
        self.injected_items = list(result.injected_items)
        self.prepared = dict(result.prepared)
        self.executed = True


@dataclass
class RequestContext:
    body: CreateResponseBody
    tenant: str
    headers: Mapping[str, str]
    response_id: str
    input_items: list[dict[str, Any]]
    conversation_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    route: Route | None = None
    stateful_tools: tuple[StatefulToolDeclaration, ...] = ()
    server_tools: list[ServerTool] = field(default_factory=list)
    bootstrap: BootstrapState = field(default_factory=BootstrapState)
    builder: ResponseBuilder | None = None
    """The response, made once the request is accepted (the end of `ResponsesService.prepare`)."""
    loop_items: list[dict[str, Any]] = field(default_factory=list)
    client_key: str | None = None
    resolved_inputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Caller items whose file parts were resolved for the upstream (`file_inputs`), by the identity
    of the caller's item: the caller's own items stay as they are, for storage."""
    summaries: dict[int, str] = field(default_factory=dict)
    """What the `compaction` items of the window stand for (opened once, in `load_history`), by
    the identity of the item."""
    compacted: dict[str, Any] | None = None
    """The `compaction` item this response made (`context_management`): it ends the window
    replayed to the model, after the caller's input and the loop items it folded."""
    folded: int = 0
    """How many of `loop_items` the latest compaction stands for (made between tool-loop turns):
    they are no longer sent to the model."""

    @property
    def response(self) -> ResponseBuilder:
        assert self.builder is not None, "the response is made at the end of `prepare`"
        return self.builder

    @property
    def store(self) -> bool:
        return self.body.store is not False

    @property
    def passthrough(self) -> bool:
        """The upstream hosts code_interpreter/shell itself: declarations go through unchanged."""
        return self.route is not None and self.route.worker.settings.hosted_tools
