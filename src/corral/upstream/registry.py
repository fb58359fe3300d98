"""Which worker serves which model, discovered from each worker's /models.

Discovery runs at start, and again later because model servers come up after the gateway (vLLM
loads for minutes): when an active health check finds a worker answering that had no models or
whose circuit was open, and when a request names a model no worker serves. Re-discovery of one
worker happens at most once per `rediscover_interval_s`, and concurrent requests share the attempt
in flight instead of each sending their own.

Discovery also settles which API each worker speaks (`upstream.api_kind`): `auto` becomes the kind
the server answers, and an explicit kind the server does not serve is reported (`problems`). A
worker whose server could not be asked stays unsettled and is asked again with its models.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from corral.config import RoutingSettings, UpstreamSettings
from corral.operator.notes import note_worker
from corral.periodic import every
from corral.protocol.errors import APIError
from corral.upstream.adapter import Adapter
from corral.upstream.api_kind import PATHS, detect_api
from corral.upstream.chat_api import ChatCompletionsAdapter
from corral.upstream.metrics import CIRCUIT_OPEN
from corral.upstream.responses_api import ResponsesAPIAdapter
from corral.upstream.routing import Policy, RoutedAdapter
from corral.upstream.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Route:
    """Where one request goes: its model's workers behind the routing adapter.

    `primary` is the worker whose settings shape the request before any call (its API, whether
    it hosts code_interpreter/shell itself); the adapter only uses workers that agree with it on
    hosting tools, so a retry never sends a request shaped for one kind of worker to the other."""

    primary: Worker
    adapter: RoutedAdapter
    upstream_model: str

    @property
    def worker(self) -> Worker:
        """The worker of the latest call (the one that answered, or the last that failed); the
        primary before any call."""
        return self.adapter.last_worker or self.primary


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
        self.configured_api: dict[int, str] = {}
        self.settled: set[int] = set()
        self.problems: dict[int, str] = {}
        self._mixed: set[str] = set()
        for settings in upstreams:
            self._register(settings)

    def _register(self, settings: UpstreamSettings) -> Worker:
        worker = Worker(settings)
        worker.breaker.failures = self.routing.breaker_failures
        worker.breaker.cooldown_s = self.routing.breaker_cooldown_s
        self.workers.append(worker)
        self.configured_api[id(worker)] = settings.api
        self.adapters[id(worker)] = self._adapter(worker)
        return worker

    def _adapter(self, worker: Worker) -> Adapter:
        """The worker's adapter; an `auto` worker not yet settled speaks /responses meanwhile."""
        if worker.api == "chat":
            return ChatCompletionsAdapter(self.http, worker)
        return ResponsesAPIAdapter(self.http, worker)

    async def add_worker(self, settings: UpstreamSettings) -> Worker:
        if any(worker.name == (settings.name or settings.url) for worker in self.workers):
            raise APIError(409, f"A worker named '{settings.name or settings.url}' exists already.", code="conflict")
        worker = self._register(settings)
        await self._discover(worker)
        self._hint(worker)
        return worker

    def remove_worker(self, name: str) -> bool:
        for worker in self.workers:
            if worker.name == name:
                self.workers.remove(worker)
                self.adapters.pop(id(worker), None)
                self.settled.discard(id(worker))
                self.problems.pop(id(worker), None)
                return True
        return False

    def adapter_for(self, worker: Worker) -> Adapter:
        note_worker(worker.name)
        return self.adapters[id(worker)]

    def usable(self, worker: Worker) -> bool:
        """Can take requests now: it answered the API probe with the kind it is used as, and its
        circuit is closed (a server never reached since the start is not usable yet)."""
        return id(worker) in self.settled and id(worker) not in self.problems and not worker.breaker.open

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
            if was_open or not worker.models or id(worker) not in self.settled:
                await self.rediscover(worker)
        else:
            worker.breaker.on_failure()
            if worker.breaker.open and not was_open:
                log.warning("upstream %s fails its health checks: circuit open", worker.name)
        CIRCUIT_OPEN.labels(worker.name).set(1 if worker.breaker.open else 0)

    def start_health_checks(self, interval_s: float) -> "asyncio.Task[None]":
        return every(interval_s, self.check_health, what="upstream health check round")

    async def discover(self) -> None:
        await asyncio.gather(*(self._discover(worker) for worker in self.workers))
        for worker in self.workers:
            self._hint(worker)

    def _hint(self, worker: Worker) -> None:
        """Say what is likely wrong with the URL of a worker that found no models."""
        if worker.models:
            return
        parts = urlsplit(worker.url)
        if not parts.scheme or not parts.netloc:
            log.warning("upstream URL %r has no scheme: did you mean 'http://%s'?", worker.url, worker.url)
        elif not parts.path.rstrip("/").endswith("/v1"):
            log.warning(
                "upstream %s lists no models and its URL has no /v1: did you mean '%s/v1'?", worker.url, worker.url
            )

    async def _settle_api(self, worker: Worker) -> None:
        if id(worker) in self.settled:
            return
        configured = self.configured_api.get(id(worker), worker.api)
        detection = await detect_api(self.http, worker.url, worker.headers(), configured)
        self.problems.pop(id(worker), None)
        if detection.problem is not None:
            self.problems[id(worker)] = detection.problem
            log.error("upstream %s: %s", worker.name, detection.problem)
        if detection.kind is None:
            return
        self.settled.add(id(worker))
        if detection.kind != worker.api:
            worker.settings = worker.settings.model_copy(update={"api": detection.kind})
            self.adapters[id(worker)] = self._adapter(worker)
        if configured == "auto":
            log.info("upstream %s speaks %s (detected)", worker.name, PATHS[detection.kind])

    async def _discover(self, worker: Worker) -> None:
        await self._settle_api(worker)
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
        if worker.settings.models is not None and id(worker) in self.settled:
            return
        task = worker.discovery
        if task is None:
            last = worker.discovered_at
            if last is not None and time.monotonic() - last < self.rediscover_interval_s:
                return
            task = worker.discovery = asyncio.create_task(self._discover(worker))
            task.add_done_callback(lambda _: setattr(worker, "discovery", None))
        await asyncio.shield(task)

    async def route(self, model: str, *, key: str | None = None, caller: str | None = None) -> Route:
        """`resolve`, after re-discovering the workers when no worker is known to serve `model`."""
        if not self.candidates(model):
            await asyncio.gather(*(self.rediscover(worker) for worker in list(self.workers)))
        return self.resolve(model, key=key, caller=caller)

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

    def resolve(self, model: str, *, key: str | None = None, caller: str | None = None) -> Route:
        """The route of one request: its model's workers behind the routing policy and retries.

        `key` keeps one conversation on one worker (its prefix cache) under `consistent_hash`;
        `caller` is the tenant, for the circuit breakers (`upstream.health`)."""
        candidates = self.candidates(model)
        if not candidates:
            raise model_not_found(model)
        primary, upstream_model = candidates[0]
        hosted = primary.settings.hosted_tools
        if any(worker.settings.hosted_tools != hosted for worker, _ in candidates) and model not in self._mixed:
            self._mixed.add(model)
            log.warning(
                "the workers serving %s disagree on hosted_tools: requests go only to those that agree with %s",
                model,
                primary.name,
            )

        def alike() -> list[tuple[Worker, str]]:
            return [c for c in self.candidates(model) if c[0].settings.hosted_tools == hosted]

        routed = RoutedAdapter(alike, self.adapter_for, self.policy(model), self.routing, key, caller)
        return Route(primary, routed, upstream_model)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": worker.name,
                "url": worker.url,
                "api": worker.api,
                "models": sorted(worker.models),
                "configured_api": self.configured_api.get(id(worker), worker.api),
                "problem": self.problems.get(id(worker)),
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
