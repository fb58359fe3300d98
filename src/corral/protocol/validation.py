"""Turn pydantic validation errors into OpenAI's 400 envelope, with `param` naming the field."""

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from corral.protocol.errors import APIError, bad_request

_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "a boolean",
    "list": "an array",
    "dict": "an object",
    "model": "an object",
}


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_UNION_TAGS = frozenset(("str", "int", "float", "bool", "none", "ConversationRef"))


def _is_union_tag(part: str | int) -> bool:
    """Pydantic names the union member an error came from inside `loc`; OpenAI's param does not."""
    return isinstance(part, str) and (
        part in _UNION_TAGS or "[" in part or part.startswith(("function-", "constrained-", "lax-", "strict-"))
    )


def param_path(loc: Sequence[str | int], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _expected(error_type: str) -> str:
    base = error_type.split("_")[0]
    return _TYPE_WORDS.get(base, "a different type")


def api_error_from_validation(exc: ValidationError, prefix: str = "") -> APIError:
    """The first pydantic error as OpenAI would word it."""
    error = exc.errors(include_url=False)[0]
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    param = param_path(loc, prefix)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if kind == "extra_forbidden":
        return bad_request(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind in ("greater_than_equal", "greater_than"):
        limit = ctx.get("ge", ctx.get("gt"))
        word = "integer" if isinstance(limit, int) else "decimal"
        return bad_request(
            f"Invalid '{param}': {word} below minimum value. Expected a value >= {limit}, but got {value} instead.",
            param=param,
            code=f"{word}_below_min_value",
        )
    if kind in ("less_than_equal", "less_than"):
        limit = ctx.get("le", ctx.get("lt"))
        word = "integer" if isinstance(limit, int) else "decimal"
        return bad_request(
            f"Invalid '{param}': {word} above maximum value. Expected a value <= {limit}, but got {value} instead.",
            param=param,
            code=f"{word}_above_max_value",
        )
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return bad_request(
            f"Invalid value: '{value}'. Supported values are: {expected}.", param=param, code="invalid_value"
        )
    if kind in ("too_long", "too_short"):
        return bad_request(f"Invalid '{param}': {error['msg'].lower()}.", param=param, code="invalid_value")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("union_tag_invalid", "model_type"):
        return bad_request(
            f"Invalid type for '{param}': expected {_expected(kind)}, but got {json_type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    return bad_request(f"Invalid '{param}': {error['msg']}.", param=param, code="invalid_value")
