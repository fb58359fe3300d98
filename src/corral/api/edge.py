"""The HTTP edge as one ASGI layer: metrics and `x-request-id`, the access log, the error
envelope of last resort, the body limit and authentication, in that order, around the routes.

Each concern is written in its own module (`metrics`, `request_ids`, `errors`, `body_limit`,
`auth`). They were five middlewares once, which cost five coroutine frames, four wrappers of
`send` (and two of `receive`) per request and a call through each wrapper for every message; here
one wrapper of each does what all of them did, in the same order, with the same answers.

Routes with a fixed path (`POST /v1/responses`, `GET /v1/models`…) are also called from here
directly (`DirectRoutes`), past Starlette's exception layer, router scan and per-route exception
wrapper: every exception they raise reaches the handler below, which answers exactly as
Starlette's handlers for `CorralError` and `HTTPException` do (`corral.api.errors.handle_error`
is the same `to_api_error`). Anything else goes through the router as before.
"""

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.api.auth import authorized
from corral.api.body_limit import BodyTooLarge, body_limit, declared_too_long
from corral.api.errors import log as error_log
from corral.api.errors import to_api_error
from corral.api.http import error_response
from corral.api.metrics import observe_response, route_label
from corral.api.request_ids import access_log, access_outcome, log_level, log_request, next_request_id
from corral.operator.notes import NOTES, RequestNotes

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """The app's plain `Route`s with a fixed path and an async function endpoint, by (method,
    path): the ones the router would pick for exactly that method and path (no earlier route
    matches them), so calling them directly changes nothing but the cost."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.table: dict[tuple[str, str], tuple[Route, Endpoint]] = {}
        routes = list(router.routes)
        for position, route in enumerate(routes):
            if type(route) is not Route or route.param_convertors or not route.methods:
                continue
            endpoint = route.endpoint
            if not (inspect.isfunction(endpoint) and inspect.iscoroutinefunction(endpoint)):
                continue
            for method in route.methods:
                probe = {"type": "http", "method": method, "path": route.path, "root_path": ""}
                if (method, route.path) in self.table or any(
                    earlier.matches(probe)[0] is Match.FULL for earlier in routes[:position]
                ):
                    continue
                self.table[(method, route.path)] = (route, endpoint)

    def find(self, scope: Scope) -> ASGIApp | None:
        found = self.table.get((scope["method"], scope["path"]))
        if found is None or scope.get("root_path"):
            return None
        route, endpoint = found
        router = self.router

        async def call(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("router", router)
            scope["route"] = route
            scope["endpoint"] = endpoint
            scope["path_params"] = {}
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        return call


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.direct: DirectRoutes | None = None

    def _target(self, scope: Scope) -> ASGIApp:
        if self.direct is None:
            starlette = scope.get("app")
            if starlette is None or not hasattr(starlette, "router"):
                return self.app
            self.direct = DirectRoutes(starlette.router)
        return self.direct.find(scope) or self.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await authorized(self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        route = route_label(scope["path"])
        request_id = next_request_id().encode()
        notes = RequestNotes()
        token = NOTES.set(notes)
        logged = access_log.isEnabledFor(log_level(scope))
        outcome = access_outcome(scope) if logged else None
        status = 0
        limit = body_limit(scope)
        seen = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                observe_response(method, route, status, time.perf_counter() - started)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
                if outcome is not None:
                    outcome.see_start(message)
            elif outcome is not None and message["type"] == "http.response.body":
                outcome.feed(message.get("body", b""))
            await send(message)

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                if outcome is not None:
                    outcome.see_request(message)
                if limit is not None:
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise BodyTooLarge(limit)
            return message

        try:
            if limit is not None and declared_too_long(scope, limit):
                await error_response(BodyTooLarge(limit))(scope, receive, observed_send)
            else:
                watched = counted_receive if limit is not None or outcome is not None else receive
                await authorized(self._target(scope), scope, watched, observed_send)
        except Exception as exc:
            if status:
                error_log.error("failed after the response started", exc_info=exc)
                raise
            await error_response(to_api_error(exc))(scope, receive, observed_send)
        finally:
            NOTES.reset(token)
            if logged:
                log_request(scope, status, notes, outcome, time.perf_counter() - started)
