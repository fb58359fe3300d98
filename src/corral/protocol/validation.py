"""Turn pydantic validation errors into OpenAI's 400 envelope, with `param` naming the field."""

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from corral.protocol.errors import APIError, bad_request

ModelT = TypeVar("ModelT", bound=BaseModel)

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


METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512
CONTAINER_NAME_MAX = 256


def parse_body(model: type[ModelT], body: Any) -> ModelT:
    """A request body as `model`: an object, checked field by field. Raises APIError(400) naming
    the first bad field."""
    if not isinstance(body, dict):
        raise bad_request(
            f"Invalid type for body: expected an object, but got {json_type_name(body)} instead.",
            code="invalid_type",
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise api_error_from_validation(exc) from None


def require_string(value: Any, param: str, *, max_length: int | None = None) -> str:
    """`value` as a string of at most `max_length` characters; else APIError(400) naming `param`."""
    if not isinstance(value, str):
        raise bad_request(
            f"Invalid type for '{param}': expected a string, but got {json_type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if max_length is not None and len(value) > max_length:
        raise bad_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length {max_length}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    return value


def string_field(body: dict[str, Any], name: str, *, param: str | None = None, required: bool = False) -> str | None:
    """The string at `body[name]`, None when absent (a 400 when `required`); `param` names it in errors."""
    where = param or name
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
        return None
    return require_string(value, where)


def validate_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """OpenAI's limits on every `metadata`: at most 16 pairs, keys up to 64 characters and string
    values up to 512. Raises APIError(400) naming the bad field."""
    if not isinstance(value, dict):
        raise bad_request(
            f"Invalid type for '{param}': expected an object, but got {json_type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if len(value) > METADATA_MAX_PAIRS:
        raise bad_request(
            f"Invalid '{param}': too many properties. Expected an object with at most {METADATA_MAX_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise bad_request(
                f"Invalid '{param}': keys can be at most {METADATA_MAX_KEY} characters long, but got a key of "
                f"{len(key)} characters.",
                param=param,
                code="invalid_value",
            )
        require_string(item, f"{param}.{key}", max_length=METADATA_MAX_VALUE)
    return value


def validate_container_name(value: Any, param: str = "name") -> str:
    """A container name: a string of at most 256 characters (the stored column's width)."""
    require_string(value, param, max_length=CONTAINER_NAME_MAX)
    if "\x00" in value:
        raise bad_request(
            f"Invalid '{param}': strings cannot contain NUL (\\u0000) characters.", param=param, code="invalid_value"
        )
    return value
