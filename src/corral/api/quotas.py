"""Per-tenant request quotas: requests per minute and concurrent requests (per gateway process).

Container quotas (live containers, storage) are checked by the container service against the
database, so they hold across replicas.
"""

import math
import time
from collections import deque
from collections.abc import Callable

from corral.config import AuthSettings, QuotaSettings
from corral.protocol.errors import rate_limited


class QuotaGate:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.recent: dict[str, deque[float]] = {}
        self.active: dict[str, int] = {}

    def limits(self, tenant: str) -> QuotaSettings:
        default = self.settings.quotas
        specific = self.settings.tenant_quotas.get(tenant)
        if specific is None:
            return default
        merged = default.model_dump()
        merged.update({key: value for key, value in specific.model_dump().items() if value is not None})
        return QuotaSettings(**merged)

    def enter(self, tenant: str) -> Callable[[], None]:
        limits = self.limits(tenant)
        now = time.monotonic()
        if limits.requests_per_minute:
            window = self.recent.setdefault(tenant, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limits.requests_per_minute:
                raise rate_limited(
                    f"Rate limit reached: {limits.requests_per_minute} requests per minute.",
                    max(1, math.ceil(window[0] + 60 - now)),
                )
            window.append(now)
        if limits.concurrent_requests:
            if self.active.get(tenant, 0) >= limits.concurrent_requests:
                raise rate_limited(f"Too many concurrent requests: at most {limits.concurrent_requests}.", 1)
        self.active[tenant] = self.active.get(tenant, 0) + 1

        def release() -> None:
            self.active[tenant] -= 1

        return release
