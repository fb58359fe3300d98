"""The sandbox backend interface the container service runs containers on."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class PythonResult:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    display: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    timed_out: bool = False
    truncated: bool = False


@dataclass
class ShellResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    truncated: bool = False


class SandboxError(Exception):
    """A sandbox problem the client should see; `status` is the HTTP status to answer with."""

    status = 500


class SandboxCapacityError(SandboxError):
    status = 429


class SandboxUnavailableError(SandboxError):
    status = 503


class SandboxBackend(Protocol):
    name: str

    async def create(self, container_id: str, *, memory_limit: str = "1g") -> str:
        """Start a container; returns where it runs (e.g. `local:<hostname>`)."""
        ...

    async def ensure_running(self, container_id: str, *, memory_limit: str = "1g") -> None:
        """(Re)start its processes if they are gone, e.g. after a gateway restart; files are kept."""
        ...

    async def is_running(self, container_id: str) -> bool: ...

    async def run_python(self, container_id: str, code: str, *, timeout_s: float) -> PythonResult: ...

    async def run_shell(
        self, container_id: str, command: str, *, timeout_s: float, max_output_length: int | None = None
    ) -> ShellResult: ...

    def files_dir(self, container_id: str) -> Path:
        """The host directory that is /mnt/data inside the container."""
        ...

    async def stop(self, container_id: str) -> None:
        """Kill its processes and free resources; keep its files (expiry)."""
        ...

    async def destroy(self, container_id: str) -> None:
        """Stop it and delete its files."""
        ...

    async def aclose(self) -> None: ...
