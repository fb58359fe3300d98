"""Access to what the scripted upstream received, and the directives that script it."""

import json
from typing import Any

import httpx


def call(name: str, **arguments: Any) -> str:
    """The directive that makes the scripted model call the tool `name` with these arguments."""
    return f"[[call {name} {json.dumps(arguments)}]]"


def sent_texts(body: dict[str, Any]) -> list[str]:
    """Every text an upstream request carried, in order (Responses input items or chat messages)."""
    found = []
    for entry in body.get("input") or body.get("messages") or []:
        content = entry.get("content")
        if isinstance(content, str):
            found.append(content)
        elif isinstance(content, list):
            found.extend(part.get("text", "") for part in content if isinstance(part, dict))
    return found


class MockUpstream:
    def __init__(self, base: str) -> None:
        self.base = base
        self.url = f"{base}/v1"

    def requests(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base}/_mock/requests").json()

    def bodies(self, path_suffix: str | None = None) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests() if path_suffix is None or r["path"].endswith(path_suffix)]

    def clear(self) -> None:
        httpx.delete(f"{self.base}/_mock/requests")
