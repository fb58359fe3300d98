"""The sandbox backend interface the container service runs containers on.

No host path crosses it: files go in and out as names relative to /mnt/data and as byte streams,
so a backend may run containers in this process or on another host.
"""

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from corral.protocol.errors import CorralError, InvalidRequest, QuotaExceeded, Unavailable


@dataclass
class PythonResult:
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    display: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    image_data: list[bytes] = field(default_factory=list)
    timed_out: bool = False
    truncated: bool = False
    status: str = "ok"
    """How the execution ended: "ok", "error" (the code raised), "aborted" (the kernel refused to run
    it: it did not run), "interrupted" (cancelled), "timed_out"."""


@dataclass
class ShellResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    truncated: bool = False


MAX_PATH_CHARS = 900
"""The longest path under /mnt/data a container file may have (longer names are skipped as data)."""


@dataclass(frozen=True)
class FileEntry:
    """A regular file in /mnt/data: its path relative to /mnt/data, size and modification time."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class FileListing:
    """The files of a container; `skipped` says what was left out and why (links, names that are not
    UTF-8 or too long, more files than listed)."""

    files: list[FileEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class FileContent:
    """An open container file: its size, and its bytes as a stream (closed when the stream ends)."""

    size: int
    chunks: AsyncIterator[bytes]


class SandboxFileError(InvalidRequest):
    """A file name the container cannot hold (a directory, a path through a link or a non-directory)."""


class SandboxError(CorralError):
    """A sandbox failure the client should see (a bare one is a server-side failure)."""

    default_code = "sandbox_unavailable"


class SandboxCapacityError(SandboxError, QuotaExceeded):
    """Every slot (or the disk) is taken; stopping an idle container or waiting may free one."""

    default_code = "rate_limit_exceeded"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=30)


class SandboxUnavailableError(SandboxError, Unavailable):
    """No sandbox can be reached or started here."""


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

    async def list_files(self, container_id: str) -> FileListing: ...

    async def read_file(self, container_id: str, path: str) -> FileContent:
        """FileNotFoundError unless `path` is a regular file (a link is never followed)."""
        ...

    async def write_file(self, container_id: str, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Create or replace `path` (a link there is replaced, never written through); returns its size."""
        ...

    async def delete_file(self, container_id: str, path: str) -> bool:
        """Remove the entry itself; False if there was none."""
        ...

    async def install_skill(self, container_id: str, name: str, archive: bytes) -> None:
        """Unpack a normalised skill archive (see `skill_bundle`) read-only at /mnt/skills/<name>,
        replacing a skill of that name."""
        ...

    async def stop(self, container_id: str) -> None:
        """Kill its processes and free resources; keep its files (expiry)."""
        ...

    async def destroy(self, container_id: str) -> None:
        """Stop it and delete its files."""
        ...

    async def aclose(self) -> None: ...
