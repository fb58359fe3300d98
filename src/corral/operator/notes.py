"""What one request's log line says that only the engine knows (which worker answered), carried
in a context variable so that the engine needs no handle on the HTTP edge."""

import contextvars
from dataclasses import dataclass


@dataclass
class RequestNotes:
    worker: str | None = None


NOTES: contextvars.ContextVar[RequestNotes | None] = contextvars.ContextVar("request_notes", default=None)


def note_worker(name: str) -> None:
    """Record the worker of the latest upstream call of the current request (the last one wins,
    so after retries it names the worker that answered or failed last)."""
    notes = NOTES.get()
    if notes is not None:
        notes.worker = name
