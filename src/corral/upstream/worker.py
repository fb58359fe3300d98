"""A worker: one upstream server, the models it serves, and how to reach it."""

from dataclasses import dataclass, field

from corral.config import UpstreamSettings


@dataclass
class Worker:
    settings: UpstreamSettings
    models: set[str] = field(default_factory=set)
    in_flight: int = 0

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.url

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def api(self) -> str:
        return self.settings.api

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers
