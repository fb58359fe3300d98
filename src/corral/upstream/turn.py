"""What one upstream model call produced, whichever API the upstream speaks."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TurnResult:
    """The outcome of one model call, in Responses shapes.

    `output` holds complete output items (message, function_call, reasoning…). `status` is
    `completed`, `incomplete` (then `incomplete_details` says why) or `failed` (then `error`
    is `{code, message}`).
    """

    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    status: str = "completed"
    incomplete_details: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    model: str | None = None
