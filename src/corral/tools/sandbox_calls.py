"""What the code interpreter and shell tools share: the request's container and its files."""

import re
from typing import Any

import orjson

from corral.sessions.containers import DATA_ROOT, ContainerService

_SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")


def parse_arguments(arguments: str, key: str) -> dict[str, Any]:
    """The model's arguments; a bare string (models do that) is taken as the `key` value."""
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {key: arguments}
    return parsed if isinstance(parsed, dict) else {key: parsed}


class ContainerBinding:
    """The container this request's tool calls run in: the tool is built before bootstrap (its
    function definition is part of preflight), and bound to the prepared container after it."""

    def __init__(self, containers: ContainerService, tenant: str) -> None:
        self.containers = containers
        self.tenant = tenant
        self._container_id: str | None = None

    def bind(self, container_id: str) -> None:
        self._container_id = container_id

    @property
    def container_id(self) -> str:
        if self._container_id is None:
            raise RuntimeError("the bootstrapper prepared no container for this tool")
        return self._container_id

    async def annotations(self, text: str) -> list[dict[str, Any]]:
        """`container_file_citation`s for `sandbox:/mnt/data/…` links to files of this container."""
        found = []
        for match in _SANDBOX_LINK.finditer(text):
            path = match.group(1)
            record = await self.containers.store.containers.get_file_by_path(self.tenant, self.container_id, path)
            if record is None:
                continue
            found.append(
                {
                    "type": "container_file_citation",
                    "container_id": self.container_id,
                    "file_id": record["id"],
                    "filename": path.removeprefix(DATA_ROOT + "/"),
                    "start_index": match.start(),
                    "end_index": match.end(),
                }
            )
        return found


def files_note(files: list[dict[str, Any]]) -> str:
    if not files:
        return ""
    return "\nFiles written: " + ", ".join(f"{f['path']} ({f['bytes']} bytes)" for f in files)
