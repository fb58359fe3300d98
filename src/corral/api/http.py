"""JSON in and out, with OpenAI's error envelope."""

from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from corral.protocol.errors import APIError, bad_request


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
            "JSON.)",
        ) from None


def client_key(request: HTTPConnection) -> str | None:
    """The caller's own upstream key: `X-Upstream-Api-Key`, or its bearer key when Corral's auth is off."""
    explicit = request.headers.get("x-upstream-api-key")
    if explicit:
        return explicit
    if request.app.state.keyring.enabled:
        return None
    authorization = request.headers.get("authorization", "")
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.envelope(), status_code=exc.status, headers=exc.headers or None)


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type") from None
    if not low <= value <= high:
        raise bad_request(
            f"Invalid '{name}': expected a value between {low} and {high}, but got {value} instead.",
            param=name,
            code="invalid_value",
        )
    return value


def query_order(request: Request, default: str = "desc") -> str:
    order = request.query_params.get("order", default)
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
            param="order",
            code="invalid_value",
        )
    return order


def page(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


class IdRoute(Route):
    """A route whose `{name}` path segment is an id with a known prefix (`resp_…`, `conv_…`).

    Where only the method differs, Starlette answers 405; but `POST /v1/responses/anything` is not
    the wrong method on a response, it is a path Corral does not serve, so a segment that is not
    such an id makes the method mismatch no match at all (a 404). With the right method the
    handler still runs, and answers for a malformed or unknown id itself.
    """

    def __init__(self, path: str, endpoint: Any, *, methods: list[str], id_param: str, prefix: str) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.id_param = id_param
        self.prefix = f"{prefix}_"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.PARTIAL:
            value = child.get("path_params", {}).get(self.id_param, "")
            if not str(value).startswith(self.prefix):
                return Match.NONE, {}
        return match, child
