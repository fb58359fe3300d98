"""Passive health: a circuit breaker per worker, fed by the outcome of real requests.

Closed: requests flow. After `failures` consecutive failures that say the worker is unhealthy the
circuit opens and the worker gets no traffic for `cooldown_s`; then it is half-open and one
request probes it: success closes the circuit, failure opens it again.

Not every failed request says the worker is unhealthy. A connection error, a timeout and a 502, 503
or 504 do (`Evidence.UNHEALTHY`). A 500 (or another 5xx) may be the answer to one caller's request
that the server cannot handle, and one tenant could otherwise open the circuit for everybody by
sending five such requests; so 500s count toward the circuit only once, since the worker last
answered, requests of at least two different callers (tenants) have had them
(`Evidence.SERVER_ERROR`). 4xx, 429 and answers without output say nothing about the worker's
health (`Evidence.NONE`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from corral.upstream.errors import EmptyAnswer, UpstreamError

WORKER_FAULTS = frozenset({502, 503, 504})
"""Upstream statuses that speak about the worker (or what stands in front of it), not the request."""


class Evidence(Enum):
    UNHEALTHY = "unhealthy"
    SERVER_ERROR = "server_error"
    NONE = "none"


def evidence(exc: UpstreamError) -> Evidence:
    """What one failed call says about the health of the worker it went to."""
    if isinstance(exc, EmptyAnswer):
        return Evidence.NONE
    status = exc.upstream_status
    if status is None or status in WORKER_FAULTS:
        return Evidence.UNHEALTHY
    if status >= 500:
        return Evidence.SERVER_ERROR
    return Evidence.NONE


@dataclass
class CircuitBreaker:
    failures: int = 5
    cooldown_s: float = 10.0
    consecutive: int = 0
    """Failures that say the worker is unhealthy, since it last answered."""
    server_errors: dict[str, int] = field(default_factory=dict)
    """500s since the worker last answered, by caller."""
    opened_at: float | None = None
    probing: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    @property
    def streak(self) -> int:
        """The failures that count toward opening: 500s only once they span two callers."""
        spread = len(self.server_errors) >= 2
        return self.consecutive + (sum(self.server_errors.values()) if spread else 0)

    def available(self) -> bool:
        if self.opened_at is None:
            return True
        if self.probing or self.clock() - self.opened_at < self.cooldown_s:
            return False
        return True

    def on_attempt(self) -> None:
        if self.opened_at is not None:
            self.probing = True

    def on_success(self) -> None:
        self.consecutive = 0
        self.server_errors.clear()
        self.opened_at = None
        self.probing = False

    def on_failure(self) -> None:
        """A failure that says the worker is unhealthy (also what active health checks report)."""
        self.consecutive += 1
        self._judge(counted=True)

    def on_server_error(self, caller: str | None) -> None:
        """A 500 answered to `caller`'s request: it counts once another caller has had one too."""
        key = caller or ""
        self.server_errors[key] = self.server_errors.get(key, 0) + 1
        self._judge(counted=len(self.server_errors) >= 2)

    def on_inconclusive(self) -> None:
        """An attempt that ended without saying anything about the worker (a 4xx, a cancelled call).

        A probe that ends so frees the half-open slot for the next request, instead of leaving
        the worker waiting for a probe that will never report."""
        self.probing = False

    def _judge(self, *, counted: bool) -> None:
        self.probing = False
        if not counted:
            return
        if self.opened_at is not None or self.streak >= self.failures:
            self.opened_at = self.clock()

    def report(self, exc: UpstreamError, caller: str | None) -> None:
        match evidence(exc):
            case Evidence.UNHEALTHY:
                self.on_failure()
            case Evidence.SERVER_ERROR:
                self.on_server_error(caller)
            case Evidence.NONE:
                self.on_inconclusive()
