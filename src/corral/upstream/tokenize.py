"""Counting a request's input tokens with the upstream's own tokenizer, where it has one.

Servers differ in where they tokenize:

- an upstream that speaks the Responses API may serve `POST /responses/input_tokens` itself
  (OpenAI does): its answer is exact, tools and all;
- vLLM and SGLang serve `POST /tokenize` at the server root, which takes chat `messages` (and
  `tools`), applies the model's chat template and answers `{"count": N, …}`;
- llama.cpp's server renders a chat with `POST /apply-template` and tokenizes text with
  `POST /tokenize` (`{"tokens": [...]}`);
- llama-cpp-python's server counts text with `POST /extras/tokenize/count` (no chat template:
  the messages' text is counted, so its answer is a little short).

Each way is tried in that order until one answers; the way that worked is remembered per worker,
and a worker with none is remembered too, so probing happens once. Nothing here raises for a
missing tokenizer: None means "the upstream cannot count", and the caller counts locally.
"""

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from corral.upstream.worker import Worker

log = logging.getLogger(__name__)

UPSTREAM_COUNT = "upstream_input_tokens"
TOKENIZE = "tokenize"
LLAMA_CPP = "llama_cpp"
LLAMA_CPP_PYTHON = "llama_cpp_python"
NONE = "none"

_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class CountRequest:
    """What to count: the Responses body (for an upstream that counts it itself) and the same
    request as chat `messages` and `tools` (for a tokenizer endpoint)."""

    responses_body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


def server_root(url: str) -> str:
    """The server's root, where tokenizer endpoints live: `http://h:8000/v1` → `http://h:8000`."""
    return url[: -len("/v1")] if url.endswith("/v1") else url


def chat_text(request: CountRequest) -> str:
    """The request's text as one string, for counters that take no chat."""
    parts: list[str] = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        parts.append(f"{message.get('role', '')}: {content or ''}")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    if request.tools:
        parts.append(orjson.dumps(request.tools).decode())
    return "\n".join(parts)


class UpstreamTokenizer:
    """Asks workers to count tokens; remembers which way each worker counts."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.ways: dict[str, str] = {}

    async def count(self, worker: Worker, request: CountRequest, client_key: str | None) -> tuple[int, str] | None:
        """(tokens, the way they were counted), or None when the worker has no tokenizer to ask."""
        known = self.ways.get(worker.name)
        if known == NONE:
            return None
        ways = [known] if known else self._ways(worker)
        answered = True
        for way in ways:
            try:
                counted = await self._count(way, worker, request, client_key)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("counting tokens with %s on %s failed: %s", way, worker.name, exc)
                answered, counted = False, None
            except ValueError as exc:
                log.debug("counting tokens with %s on %s: not JSON: %s", way, worker.name, exc)
                counted = None
            if counted is not None:
                self.ways[worker.name] = way
                return counted, way
        if known is None and answered:
            self.ways[worker.name] = NONE
        return None

    @staticmethod
    def _ways(worker: Worker) -> list[str]:
        ways = [UPSTREAM_COUNT] if worker.api == "responses" else []
        return [*ways, TOKENIZE, LLAMA_CPP, LLAMA_CPP_PYTHON]

    async def _post(self, worker: Worker, url: str, body: dict[str, Any], client_key: str | None) -> Any:
        """The JSON answer, or None for an HTTP error (the endpoint is not there)."""
        async with self.http.post(
            url, data=orjson.dumps(body), headers=worker.headers(client_key), timeout=_TIMEOUT
        ) as response:
            if response.status >= 400:
                return None
            return orjson.loads(await response.read())

    async def _count(self, way: str, worker: Worker, request: CountRequest, client_key: str | None) -> int | None:
        root = server_root(worker.url)
        if way == UPSTREAM_COUNT:
            url = f"{worker.url}/responses/input_tokens"
            return _integer(await self._post(worker, url, request.responses_body, client_key), "input_tokens")
        if way == TOKENIZE:
            body: dict[str, Any] = {"model": request.model, "messages": request.messages, "add_generation_prompt": True}
            if request.tools:
                body["tools"] = request.tools
            return _integer(await self._post(worker, f"{root}/tokenize", body, client_key), "count")
        if way == LLAMA_CPP:
            body = {"messages": request.messages}
            if request.tools:
                body["tools"] = request.tools
            rendered = await self._post(worker, f"{root}/apply-template", body, client_key)
            if not isinstance(rendered, dict) or not isinstance(rendered.get("prompt"), str):
                return None
            tokens = await self._post(worker, f"{root}/tokenize", {"content": rendered["prompt"]}, client_key)
            if not isinstance(tokens, dict) or not isinstance(tokens.get("tokens"), list):
                return None
            return len(tokens["tokens"])
        answer = await self._post(
            worker, f"{root}/extras/tokenize/count", {"model": request.model, "input": chat_text(request)}, client_key
        )
        return _integer(answer, "count")


def _integer(answer: Any, key: str) -> int | None:
    value = answer.get(key) if isinstance(answer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
