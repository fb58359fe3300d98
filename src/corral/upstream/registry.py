"""Which worker serves which model, discovered from each worker's /models.

Discovery runs at start, and again later because model servers come up after the gateway (vLLM
loads for minutes): when an active health check finds a worker answering that had no models or
whose circuit was open, and when a request names a model no worker serves. Re-discovery of one
worker happens at most once per `rediscover_interval_s`, and concurrent requests share the attempt
in flight instead of each sending their own.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from corral.config import RoutingSettings, UpstreamSettings
from corral.protocol.errors import APIError
from corral.upstream.adapter import Adapter
from corral.upstream.chat_api import ChatCompletionsAdapter
from corral.upstream.metrics import CIRCUIT_OPEN
from corral.upstream.responses_api import ResponsesAPIAdapter
from corral.upstream.routing import Policy, RoutedAdapter
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
    rediscover_interval_s = 5.0

    def __init__(
        self, http: aiohttp.ClientSession, upstreams: list[UpstreamSettings], routing: RoutingSettings | None = None
    ) -> None:
        self.http = http
        self.routing = routing or RoutingSettings()
        self.workers: list[Worker] = []
        self.adapters: dict[int, Adapter] = {}
        self.policies: dict[str, Policy] = {}
        for settings in upstreams:
            self._register(settings)

    def _register(self, settings: UpstreamSettings) -> Worker:
        worker = Worker(settings)
        worker.breaker.failures = self.routing.breaker_failures
        worker.breaker.cooldown_s = self.routing.breaker_cooldown_s
        adapter: Adapter = (
            ChatCompletionsAdapter(self.http, worker)
            if worker.api == "chat"
            else ResponsesAPIAdapter(self.http, worker)
        )
        self.workers.append(worker)
        self.adapters[id(worker)] = adapter
        return worker

    async def add_worker(self, settings: UpstreamSettings) -> Worker:
        if any(worker.name == (settings.name or settings.url) for worker in self.workers):
            raise APIError(409, f"A worker named '{settings.name or settings.url}' exists already.", code="conflict")
        worker = self._register(settings)
        await self._discover(worker)
        return worker

    def remove_worker(self, name: str) -> bool:
        for worker in self.workers:
            if worker.name == name:
                self.workers.remove(worker)
                self.adapters.pop(id(worker), None)
                return True
        return False

    def adapter_for(self, worker: Worker) -> Adapter:
        return self.adapters[id(worker)]

    async def check_health(self) -> None:
        """One round of active checks: an unanswered GET /models counts as a failure of that worker."""
        await asyncio.gather(*(self._check(worker) for worker in list(self.workers)))

    async def _check(self, worker: Worker) -> None:
        try:
            async with self.http.get(f"{worker.url}/models", headers=worker.headers()) as response:
                healthy = response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            healthy = False
        was_open = worker.breaker.open
        if healthy:
            if was_open:
                log.info("upstream %s answers its health check again: circuit closed", worker.name)
                worker.breaker.on_success()
            if was_open or not worker.models:
                await self.rediscover(worker)
        else:
            worker.breaker.on_failure()
            if worker.breaker.open and not was_open:
                log.warning("upstream %s fails its health checks: circuit open", worker.name)
        CIRCUIT_OPEN.labels(worker.name).set(1 if worker.breaker.open else 0)

    async def run_health_checks(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check_health()
            except Exception:
                log.exception("health check round failed")

    async def discover(self) -> None:
        await asyncio.gather(*(self._discover(worker) for worker in self.workers))

    async def _discover(self, worker: Worker) -> None:
        if worker.settings.models is not None:
            worker.models = set(worker.settings.models)
            return
        worker.discovered_at = time.monotonic()
        url = f"{worker.url}/models"
        try:
            async with self.http.get(url, headers=worker.headers()) as response:
                raw = await response.read()
                if response.status >= 400:
                    log.warning(
                        "model discovery failed for %s: GET %s answered HTTP %d", worker.name, url, response.status
                    )
                    return
                body = orjson.loads(raw)
        except (aiohttp.ClientError, orjson.JSONDecodeError, TimeoutError) as exc:
            log.warning("model discovery failed for %s: GET %s: %s", worker.name, url, str(exc) or type(exc).__name__)
            return
        entries = body.get("data", []) if isinstance(body, dict) else []
        models = {entry["id"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), str)}
        if models != worker.models:
            log.info("upstream %s serves: %s", worker.name, ", ".join(sorted(models)) or "no models")
        worker.models = models

    async def rediscover(self, worker: Worker) -> None:
        """Ask one worker for its models again, unless it was asked less than `rediscover_interval_s`
        ago; callers arriving while an attempt is in flight wait for that attempt."""
        if worker.settings.models is not None:
            return
        task = worker.discovery
        if task is None:
            last = worker.discovered_at
            if last is not None and time.monotonic() - last < self.rediscover_interval_s:
                return
            task = worker.discovery = asyncio.create_task(self._discover(worker))
            task.add_done_callback(lambda _: setattr(worker, "discovery", None))
        await asyncio.shield(task)

    async def route(self, model: str, *, key: str | None = None) -> Route:
        """`resolve`, after re-discovering the workers when no worker is known to serve `model`."""
        if not self.candidates(model):
            await asyncio.gather(*(self.rediscover(worker) for worker in list(self.workers)))
        return self.resolve(model, key=key)

    def _serves(self, worker: Worker, model: str) -> str | None:
        aliased = worker.settings.aliases.get(model)
        if aliased is not None:
            return aliased
        return model if model in worker.models else None

    def candidates(self, model: str) -> list[tuple[Worker, str]]:
        return [(worker, name) for worker in self.workers if (name := self._serves(worker, model))]

    def policy(self, model: str) -> Policy:
        name = self.routing.model_policies.get(model, self.routing.policy)
        policy = self.policies.get(model)
        if policy is None or policy.name != name:
            policy = self.policies[model] = Policy(name)
        return policy

    def resolve(self, model: str, *, key: str | None = None) -> Route:
        """The route of one request: its model's workers behind the routing policy and retries.

        `key` keeps one conversation on one worker (its prefix cache) under `consistent_hash`."""
        candidates = self.candidates(model)
        if not candidates:
            raise model_not_found(model)
        routed = RoutedAdapter(lambda: self.candidates(model), self.adapter_for, self.policy(model), self.routing, key)
        worker, upstream_model = routed.primary()
        return Route(worker, routed, upstream_model)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": worker.name,
                "url": worker.url,
                "api": worker.api,
                "models": sorted(worker.models),
                "in_flight": worker.in_flight,
                "circuit": "open" if worker.breaker.open else "closed",
            }
            for worker in self.workers
        ]

    def list_models(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for worker in self.workers:
            for name in sorted(worker.models) + sorted(worker.settings.aliases):
                seen.setdefault(name, {"id": name, "object": "model", "created": 0, "owned_by": worker.name})
        return list(seen.values())
