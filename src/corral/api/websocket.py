"""WebSocket mode: `/v1/responses` upgraded; `response.create` in, the SSE stream's events out.

Each `response.create` carries the fields of `POST /v1/responses` (streaming is implicit) and
runs through the same engine (`ResponsesService.prepare` and `execute`); its events go out as
one JSON text message each, exactly as the SSE stream frames them. Responses on one connection
run one after another, in the order they were sent; a `stream_id` names a lane of its own (lanes
run side by side, each in order, and their events echo the `stream_id`).

A request the engine refuses before its first event is answered with an `error` event in the
WebSocket shape (`{type: "error", status, error: {type, code, message, param}}`) and the
connection stays open for the next one. An `error` event in the middle of a response also
carries the nested `error` object that the SDKs read in WebSocket mode, beside the flat fields
the SSE stream has.

`store: false` responses are kept in the connection's memory (the most recent
`MEMORY_SIZE`), so that the next `response.create` can name one as `previous_response_id`;
they are gone with the connection. When the client goes away, a stored response in flight runs
on to completion and is persisted; an unstored one is cancelled.

Authentication happens at the upgrade (`corral.api.edge`); quotas are taken per response.

A connection lives at most `websocket_max_age_s` (60 minutes, as OpenAI's): then an `error` event
with code `websocket_connection_limit_reached` says so, the responses in flight finish, and the
connection closes; the client opens a new one. `response.steer` is answered with
`response.steer.failed` (`steering_not_supported`): the input was not taken.
"""

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from corral.api.errors import stream_failure, to_api_error
from corral.api.http import client_key
from corral.api.quotas import QuotaGate
from corral.api.tenancy import DEFAULT_TENANT
from corral.protocol.errors import APIError, bad_request
from corral.protocol.validation import json_type_name
from corral.protocol.vocabulary import EventType
from corral.responses.context import RequestContext
from corral.responses.service import ResponsesService

log = logging.getLogger(__name__)

MEMORY_SIZE = 16
"""Unstored responses a connection keeps for `previous_response_id`."""
CREATE = "response.create"
"""The client event that makes a response."""
STEER = "response.steer"
LIMIT_REACHED = "websocket_connection_limit_reached"
DEFAULT_MAX_AGE_S = 3600.0
_ENVELOPE = ("type", "stream", "stream_id", "generate")
"""Fields of `response.create` that belong to the WebSocket envelope, not to the create body."""


def socket_frame(event: dict[str, Any], stream_id: str | None) -> bytes:
    """One event as a WebSocket message."""
    if event["type"] == EventType.ERROR and "error" not in event:
        nested = {
            "type": "server_error",
            "code": event.get("code"),
            "message": event.get("message"),
            "param": event.get("param"),
        }
        event = {**event, "error": nested}
    if stream_id is not None:
        event = {**event, "stream_id": stream_id}
    return orjson.dumps(event)


def error_event(exc: APIError, stream_id: str | None) -> dict[str, Any]:
    """A request refused before its first event, as the WebSocket `error` event."""
    error = exc.envelope()["error"]
    if exc.headers:
        error["headers"] = dict(exc.headers)
    event: dict[str, Any] = {"type": "error", "status": exc.status, "error": error}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return event


class Lane:
    """The queued responses of one `stream_id`, run in order by one task while any are queued."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.current: RequestContext | None = None
        self.task: asyncio.Task[None] | None = None


class ResponsesSocket:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        state = websocket.app.state
        self.service: ResponsesService = state.responses
        self.quotas: QuotaGate = state.quotas
        self.tenant: str = getattr(websocket.state, "tenant", None) or DEFAULT_TENANT
        self.client_key = client_key(websocket)
        self.memory: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.lanes: dict[str | None, Lane] = {}
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.max_age_s: float = getattr(state, "websocket_max_age_s", DEFAULT_MAX_AGE_S)

    async def serve(self) -> None:
        await self.websocket.accept()
        deadline = asyncio.get_running_loop().time() + self.max_age_s
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await self.websocket.receive()
                except TimeoutError:
                    await self.close_at_limit()
                    break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                await self.dispatch(text)
        finally:
            self.closed = True
            await self.wind_down()

    async def wind_down(self) -> None:
        """Cancel what the client can no longer get, and let stored responses in flight finish."""
        finishing = []
        for lane in list(self.lanes.values()):
            if lane.task is None:
                continue
            if lane.current is None or not lane.current.store:
                lane.task.cancel()
            finishing.append(lane.task)
        if finishing:
            await asyncio.gather(*finishing, return_exceptions=True)

    async def close_at_limit(self) -> None:
        """Say the connection reached its age, let the responses in flight finish, then close."""
        minutes = self.max_age_s / 60
        await self.refuse(
            APIError(
                400,
                f"Responses websocket connection limit reached ({minutes:g} minutes). Create a new websocket "
                "connection to continue.",
                type="invalid_request_error",
                code=LIMIT_REACHED,
            )
        )
        running = [lane.task for lane in self.lanes.values() if lane.task is not None]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if not self.closed:
            try:
                await self.websocket.close(code=1000)
            except (RuntimeError, OSError):
                pass

    async def send(self, data: bytes) -> None:
        if self.closed:
            return
        async with self.send_lock:
            try:
                await self.websocket.send_text(data.decode())
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True

    async def refuse(self, exc: APIError, stream_id: str | None = None) -> None:
        await self.send(orjson.dumps(error_event(exc, stream_id)))

    async def dispatch(self, text: str) -> None:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.refuse(bad_request("We could not parse the JSON of your WebSocket message."))
            return
        if not isinstance(event, dict):
            await self.refuse(
                bad_request(
                    f"Invalid type for message: expected an object, but got {json_type_name(event)} instead.",
                    code="invalid_type",
                )
            )
            return
        kind = event.get("type")
        stream_id = event.get("stream_id")
        if stream_id is not None and not isinstance(stream_id, str):
            await self.refuse(
                bad_request(
                    f"Invalid type for 'stream_id': expected a string, but got {json_type_name(stream_id)} instead.",
                    param="stream_id",
                    code="invalid_type",
                )
            )
            return
        if kind == STEER:
            await self.refuse_steer(event)
            return
        if kind != CREATE:
            await self.refuse(
                bad_request(
                    f"Invalid value: '{kind}'. Supported values are: 'response.create'.",
                    param="type",
                    code="invalid_value",
                ),
                stream_id,
            )
            return
        lane = self.lanes.get(stream_id)
        if lane is None:
            lane = self.lanes[stream_id] = Lane()
            lane.queue.put_nowait(event)
            lane.task = asyncio.create_task(self.run_lane(lane, stream_id))
        else:
            lane.queue.put_nowait(event)

    async def refuse_steer(self, event: dict[str, Any]) -> None:
        steer = {"previous_response_id": event.get("previous_response_id"), "input": event.get("input")}
        await self.send(
            orjson.dumps(
                {
                    "type": "response.steer.failed",
                    "sequence_number": 0,
                    "steer": steer,
                    "error": {
                        "type": "invalid_request_error",
                        "code": "steering_not_supported",
                        "message": "Steering is not supported by this gateway: the input was not queued. Send it "
                        "in the next response.create.",
                    },
                }
            )
        )

    async def run_lane(self, lane: Lane, stream_id: str | None) -> None:
        """Run the lane's queue dry, then retire the lane (a new message makes a new one)."""
        while not self.closed and not lane.queue.empty():
            event = lane.queue.get_nowait()
            try:
                await self.respond(lane, event, stream_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.refuse(to_api_error(exc), stream_id)
            finally:
                lane.current = None
        if self.lanes.get(stream_id) is lane:
            del self.lanes[stream_id]

    async def respond(self, lane: Lane, event: dict[str, Any], stream_id: str | None) -> None:
        body = {key: value for key, value in event.items() if key not in _ENVELOPE}
        generate = event.get("generate", True)
        if not isinstance(generate, bool):
            raise bad_request(
                f"Invalid type for 'generate': expected a boolean, but got {json_type_name(generate)} instead.",
                param="generate",
                code="invalid_type",
            )
        if body.get("background"):
            raise bad_request("Background mode is not supported in WebSocket mode.", param="background")
        release = self.quotas.enter(self.tenant)
        try:
            ctx = await self.service.prepare(
                body,
                tenant=self.tenant,
                headers=self.websocket.headers,
                client_key=self.client_key,
                memory=self.memory,
            )
            lane.current = ctx

            async def sink(event: dict[str, Any]) -> None:
                await self.send(socket_frame(event, stream_id))

            ctx.response.emitter.attach(sink)
            if generate:
                await self.execute(ctx)
            else:
                await self.service.prepare_only(ctx)
            self.remember(ctx)
        finally:
            release()

    async def execute(self, ctx: RequestContext) -> None:
        """The engine's run; a failure after the first event ends the response as the SSE stream
        ends it (`error`, `response.failed`), one before it is the caller's to refuse."""
        try:
            await self.service.execute(ctx)
        except Exception as exc:
            if not ctx.response.started:
                raise
            await ctx.response.abort(*stream_failure(exc))

    def remember(self, ctx: RequestContext) -> None:
        """Keep a chain the database does not hold in full: an unstored response, or a stored one
        that continues an unstored one."""
        previous = ctx.body.previous_response_id
        if ctx.store and not (previous and previous in self.memory):
            return
        self.memory[ctx.response_id] = [*ctx.history, *ctx.input_items, *ctx.response.output]
        while len(self.memory) > MEMORY_SIZE:
            self.memory.popitem(last=False)


async def responses_socket(websocket: WebSocket) -> None:
    await ResponsesSocket(websocket).serve()


routes = [WebSocketRoute("/v1/responses", responses_socket)]
