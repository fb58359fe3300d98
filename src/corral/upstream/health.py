"""Passive health: a circuit breaker per worker, fed by the outcome of real requests.

Closed: requests flow. After `failures` consecutive retryable failures the circuit opens and the
worker gets no traffic for `cooldown_s`; then it is half-open and one request probes it: success
closes the circuit, failure opens it again.
"""

import time
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    failures: int = 5
    cooldown_s: float = 10.0
    consecutive: int = 0
    opened_at: float | None = None
    probing: bool = False
    clock: object = field(default=time.monotonic, repr=False)

    def _now(self) -> float:
        return self.clock()  # type: ignore[operator]

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def available(self) -> bool:
        if self.opened_at is None:
            return True
        if self.probing or self._now() - self.opened_at < self.cooldown_s:
            return False
        return True

    def on_attempt(self) -> None:
        if self.opened_at is not None:
            self.probing = True

    def on_success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.probing = False

    def on_failure(self) -> None:
        self.consecutive += 1
        self.probing = False
        if self.opened_at is not None or self.consecutive >= self.failures:
            self.opened_at = self._now()
