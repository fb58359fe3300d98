"""Request ids: every answer carries `x-request-id`, and every log line written while serving it."""

import logging

from corral.protocol.errors import REQUEST_ID
from corral.protocol.ids import new_id

__all__ = ["REQUEST_ID", "RequestIdFilter", "configure_logging", "next_request_id"]


def next_request_id() -> str:
    request_id = new_id("req")[:28]
    REQUEST_ID.set(request_id)
    return request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str) -> None:
    """Structured enough to grep and parse: key=value fields, the request id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "ts=%(asctime)s level=%(levelname)s logger=%(name)s request_id=%(request_id)s msg=%(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
