"""How Corral's servers run under uvicorn: uvloop and httptools, no uvicorn access log (Corral logs
its own line per request), and time for requests in flight to finish at shutdown."""

from typing import Any

from corral.config import Settings

SHUTDOWN_GRACE_S = 30


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
    }
