"""Which worker serves which model, discovered from each worker's /models."""

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from corral.config import UpstreamSettings
from corral.protocol.errors import APIError
from corral.upstream.adapter import Adapter
from corral.upstream.chat_api import ChatCompletionsAdapter
from corral.upstream.responses_api import ResponsesAPIAdapter
from corral.upstream.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Route:
    """Where one request goes: the worker, its adapter, and the model name the worker knows."""

    worker: Worker
    adapter: Adapter
    upstream_model: str


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class UpstreamRegistry:
    def __init__(self, http: aiohttp.ClientSession, upstreams: list[UpstreamSettings]) -> None:
        self.http = http
        self.workers = [Worker(settings) for settings in upstreams]
        self.adapters: dict[int, Adapter] = {id(worker): self._adapter(worker) for worker in self.workers}
        self._counters: dict[str, itertools.count[int]] = {}

    def _adapter(self, worker: Worker) -> Adapter:
        if worker.api == "chat":
            return ChatCompletionsAdapter(self.http, worker)
        return ResponsesAPIAdapter(self.http, worker)

    async def discover(self) -> None:
        await asyncio.gather(*(self._discover(worker) for worker in self.workers))

    async def _discover(self, worker: Worker) -> None:
        if worker.settings.models is not None:
            worker.models = set(worker.settings.models)
            return
        try:
            async with self.http.get(f"{worker.url}/models", headers=worker.headers()) as response:
                body = orjson.loads(await response.read()) if response.status < 400 else {}
        except (aiohttp.ClientError, orjson.JSONDecodeError, TimeoutError) as exc:
            log.warning("model discovery failed for %s: %s", worker.name, exc)
            return
        worker.models = {entry["id"] for entry in body.get("data", []) if isinstance(entry, dict)}

    def _serves(self, worker: Worker, model: str) -> str | None:
        aliased = worker.settings.aliases.get(model)
        if aliased is not None:
            return aliased
        return model if model in worker.models else None

    def resolve(self, model: str) -> Route:
        candidates = [(worker, name) for worker in self.workers if (name := self._serves(worker, model))]
        if not candidates:
            raise model_not_found(model)
        counter = self._counters.setdefault(model, itertools.count())
        worker, upstream_model = candidates[next(counter) % len(candidates)]
        return Route(worker, self.adapters[id(worker)], upstream_model)

    def list_models(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for worker in self.workers:
            for name in sorted(worker.models) + sorted(worker.settings.aliases):
                seen.setdefault(name, {"id": name, "object": "model", "created": 0, "owned_by": worker.name})
        return list(seen.values())
