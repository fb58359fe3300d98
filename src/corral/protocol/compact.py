"""Validation of `POST /v1/responses/compact` bodies."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from corral.protocol.request import CreateResponseBody, validate_create_body
from corral.protocol.validation import parse_body


class CompactBody(BaseModel):
    """The window to compact: `input`, after the `previous_response_id` chain if one is named."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: StrictStr
    input: StrictStr | list[Any] | None = None
    instructions: StrictStr | None = None
    previous_response_id: StrictStr | None = None
    prompt_cache_key: Annotated[StrictStr, Field(max_length=64)] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: StrictStr | None = None
    image: dict[str, Any] | None = None


def validate_compact_body(body: Any) -> CreateResponseBody:
    """A compact body, checked field by field, then as the create body whose window it compacts
    (never stored: `store` is false). Raises APIError(400) naming the first bad field."""
    parsed = parse_body(CompactBody, body)
    fields = parsed.model_dump(exclude_none=True, exclude={"image", "prompt_cache_options"})
    return validate_create_body({**fields, "store": False})
