"""The stateful-tool bootstrap interface.

Stateful tools (`code_interpreter`, `shell`) need an execution session prepared before the model
is first called. A bootstrapper does that once per request: it sees a read-only view of the
request and returns items to inject ahead of the caller's input plus opaque, JSON-serialisable
prepared state per tool kind, which the engine carries to every execution of those tools.
Operators can plug in their own implementation by dotted path (`package.module:attribute`).
"""

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from corral.protocol.errors import CorralError
from corral.protocol.hosted_tools import is_client_shell

STATEFUL_TOOL_KINDS = ("code_interpreter", "shell")


@dataclass(frozen=True)
class StatefulToolDeclaration:
    kind: str
    index: int
    declaration: Mapping[str, Any]


@dataclass(frozen=True)
class BootstrapRequest:
    """What a bootstrapper may look at. Nothing here is to be mutated."""

    tools: tuple[StatefulToolDeclaration, ...]
    history: Sequence[Mapping[str, Any]]
    headers: Mapping[str, str]
    tenant: str
    storage: Any
    response_id: str
    model: str
    chain_key: str | None = None

    def kinds(self) -> tuple[str, ...]:
        return tuple(tool.kind for tool in self.tools)


@dataclass
class BootstrapResult:
    injected_items: list[dict[str, Any]] = field(default_factory=list)
    prepared: dict[str, dict[str, Any]] = field(default_factory=dict)


class BootstrapError(CorralError):
    """A bootstrap failure on the server's side. A bootstrapper may raise any `CorralError` to say
    more (`NotFound`, `InvalidRequest`, `QuotaExceeded`, `Unavailable`…): the request fails with
    that error under the code `stateful_tool_bootstrap_failed`."""


@runtime_checkable
class StatefulToolBootstrapper(Protocol):
    async def bootstrap(self, request: BootstrapRequest) -> BootstrapResult: ...


class NoopBootstrapper:
    """For deployments where the upstream hosts the stateful tools itself."""

    async def bootstrap(self, request: BootstrapRequest) -> BootstrapResult:
        return BootstrapResult()


def declared_stateful_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[StatefulToolDeclaration, ...]:
    """The stateful tools a request declares; `shell` with a local environment is the client's."""
    declared = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if is_client_shell(tool):
            continue
        if kind in STATEFUL_TOOL_KINDS:
            declared.append(StatefulToolDeclaration(kind, index, MappingProxyType(dict(tool))))
    return tuple(declared)


def load_bootstrapper(spec: str, builtins: Mapping[str, Any]) -> StatefulToolBootstrapper:
    """A bootstrapper by built-in name, or `package.module:attribute` (a class, factory or instance)."""
    if spec in builtins:
        factory = builtins[spec]
    elif ":" in spec:
        module_name, _, attribute = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    else:
        raise ValueError(f"unknown bootstrapper {spec!r}: use one of {sorted(builtins)} or package.module:attribute")
    if inspect.isclass(factory) or not isinstance(factory, StatefulToolBootstrapper):
        instance = factory() if callable(factory) else factory
    else:
        instance = factory
    if not isinstance(instance, StatefulToolBootstrapper):
        raise TypeError(f"bootstrapper {spec!r} has no async bootstrap(request) method")
    return instance
