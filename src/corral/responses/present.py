"""What the client is shown of a stored or finished response, by its `include` list."""

from collections.abc import Sequence
from typing import Any

from corral.protocol.items import complete_message

CODE_OUTPUTS = "code_interpreter_call.outputs"
_ECHOED_DEFAULTS = {"frequency_penalty": 0.0, "presence_penalty": 0.0}
"""Fields every Response carries; responses stored before they were echoed get them here."""


def present_item(item: dict[str, Any], include: Sequence[str] | None) -> dict[str, Any]:
    if item.get("type") == "code_interpreter_call" and CODE_OUTPUTS not in (include or ()):
        return {**item, "outputs": None}
    complete_message(item)
    return item


def present_response(response: dict[str, Any], include: Sequence[str] | None) -> dict[str, Any]:
    output = [present_item(item, include) for item in response.get("output") or []]
    return {**_ECHOED_DEFAULTS, **response, "output": output}
