"""Which API an upstream speaks — `/responses`, `/chat/completions`, both or neither — found
without running its model.

A probe first sends `GET` to the endpoint: a server that routes by method (FastAPI and Starlette:
vLLM, SGLang, llama-cpp-python, LiteLLM) answers 405 for a POST-only route it has and 404 for one it
lacks, and no request reaches a handler. Where `GET` says nothing (cpp-httplib, Go's routers answer
404 either way) it sends `POST {}`: a server with the endpoint rejects the empty body (400/422, or
a 404 naming the missing model); one without it answers 404/405/501 about the path. Answers that
could come from a proxy or an auth gate in front of the routes (401, 403, 502-504) decide nothing.
"""

import enum
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

Kind = Literal["responses", "chat"]
PATHS: dict[str, str] = {"responses": "/responses", "chat": "/chat/completions"}
UNDECIDED_STATUSES = (401, 403, 502, 503, 504)


class Answer(enum.Enum):
    SERVED = "served"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"


@dataclass
class Detection:
    """`kind` is what to use (None: undecided, probe again later); `problem` says why an explicit
    kind cannot work; `seen` is what each endpoint answered, for logs and `corral doctor`."""

    kind: str | None
    problem: str | None = None
    seen: dict[str, str] = field(default_factory=dict)


async def probe_endpoint(
    http: aiohttp.ClientSession, base_url: str, kind: str, headers: dict[str, str]
) -> tuple[Answer, str]:
    url = base_url + PATHS[kind]
    try:
        async with http.get(url, headers=headers) as response:
            status = response.status
            await response.read()
        if status == 405:
            return Answer.SERVED, "GET answered 405 (a POST-only route)"
        if status in UNDECIDED_STATUSES:
            return Answer.UNKNOWN, f"GET answered HTTP {status}"
        async with http.post(url, data=b"{}", headers=headers) as response:
            status = response.status
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Answer.UNREACHABLE, str(exc) or type(exc).__name__
    if status in (405, 501) or (status == 404 and b"model" not in body.lower()):
        return Answer.ABSENT, f"HTTP {status}"
    if status in UNDECIDED_STATUSES:
        return Answer.UNKNOWN, f"HTTP {status}"
    return Answer.SERVED, f"HTTP {status} to an empty request"


async def detect_api(
    http: aiohttp.ClientSession, base_url: str, headers: dict[str, str], configured: str = "auto"
) -> Detection:
    """The kind to use for a worker configured as `configured` (auto, responses or chat)."""
    order = (
        ["responses", "chat"]
        if configured == "auto"
        else [configured, "chat" if configured == "responses" else "responses"]
    )
    answers: dict[str, Answer] = {}
    seen: dict[str, str] = {}
    for kind in order:
        answers[kind], seen[kind] = await probe_endpoint(http, base_url, kind, headers)
        if answers[kind] is Answer.SERVED:
            break
        if answers[kind] is Answer.UNREACHABLE:
            return Detection(None, seen=seen)
        if configured != "auto" and answers[kind] is Answer.UNKNOWN:
            return Detection(None, seen=seen)
    served = [kind for kind in order if answers.get(kind) is Answer.SERVED]
    if configured == "auto":
        if served:
            return Detection(served[0], seen=seen)
        if all(answer is Answer.ABSENT for answer in answers.values()):
            return Detection(
                None,
                problem=f"{base_url} serves neither /responses nor /chat/completions (is the URL missing /v1?)",
                seen=seen,
            )
        return Detection(None, seen=seen)
    if configured in served:
        return Detection(configured, seen=seen)
    other = order[1]
    if other in served:
        return Detection(
            configured,
            problem=f"configured as api: {configured}, but {base_url}{PATHS[configured]} is not served "
            f"({seen[configured]}); {base_url}{PATHS[other]} answers: use api: {other} (or auto)",
            seen=seen,
        )
    return Detection(
        configured,
        problem=f"configured as api: {configured}, but {base_url} serves neither /responses nor "
        "/chat/completions (is the URL missing /v1?)",
        seen=seen,
    )
