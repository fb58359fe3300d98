"""Every name of the vocabulary is one the openai SDK defines."""

import typing
from typing import Any

from openai.types.responses import ResponseInputItem, ResponseOutputItem, ResponseStatus, ResponseStreamEvent

from corral.protocol.vocabulary import (
    TERMINAL_EVENTS,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    EventType,
    ItemType,
    terminal_event,
)


def literals(annotation: Any) -> set[str]:
    """The strings of a `Literal`, also inside `Optional[Literal[...]]`."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return {name for arg in typing.get_args(annotation) for name in literals(arg)}


def literal_types(union: Any) -> set[str]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    names: set[str] = set()
    for model in typing.get_args(union):
        field = getattr(model, "model_fields", {}).get("type")
        if field is not None:
            names |= literals(field.annotation)
    return names


def test_event_types_are_the_sdks() -> None:
    assert {str(kind) for kind in EventType} <= literal_types(ResponseStreamEvent)


def test_item_types_are_the_sdks() -> None:
    assert {str(kind) for kind in ItemType} <= literal_types(ResponseOutputItem) | literal_types(ResponseInputItem)


def test_statuses_split_the_sdks_in_two() -> None:
    statuses = set(typing.get_args(ResponseStatus))
    assert TERMINAL_STATUSES | UNFINISHED_STATUSES == statuses
    assert not TERMINAL_STATUSES & UNFINISHED_STATUSES


def test_members_are_the_plain_strings() -> None:
    assert EventType.COMPLETED == "response.completed" and "response.completed" in TERMINAL_EVENTS
    assert {terminal_event(status) for status in TERMINAL_STATUSES} <= TERMINAL_EVENTS
