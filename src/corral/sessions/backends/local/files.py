"""Container files, touched by the gateway (root) without ever following a link the container planted.

Everything under a container's /mnt/data is written by hostile code. Every operation here starts
from a descriptor of the data root and walks one component at a time with `O_NOFOLLOW` opens
relative to the previous descriptor, so a symbolic link anywhere on the path (final component or
a parent swapped for a link mid-walk) is refused, never resolved; `..` and absolute names cannot
occur. Reads take regular files only (a FIFO or device would block or leak); writes go to a fresh
temporary name and are renamed over the target, which replaces a link rather than writing through
it; deletes unlink the entry itself. The same guarantee as `openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS)`, with one code path on every kernel.

All functions are blocking: call them through `asyncio.to_thread`.
"""

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from corral.sessions.backends.base import MAX_PATH_CHARS, FileEntry, FileListing, SandboxFileError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LISTED = 5000
MAX_DEPTH = 32
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Owner:
    """Who the container's files belong to (the container's uid), or None to keep the gateway's."""

    uid: int | None = None
    gid: int | None = None

    def apply(self, fd: int, mode: int) -> None:
        if self.uid is not None and self.gid is not None:
            os.fchown(fd, self.uid, self.gid)
        os.fchmod(fd, mode)


def split(relative: str) -> list[str]:
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..") or "\x00" in part for part in parts):
        raise SandboxFileError(f"not a plain relative path: {relative!r}")
    return parts


def open_root(root: Path) -> int:
    """The data root itself is the gateway's (its parents are root-owned), so a path open is safe here."""
    return os.open(root, _DIR_FLAGS)


def _open_dir(parent: int, name: str, *, create: bool, owner: Owner) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    owner.apply(fd, 0o755)
    return fd


def _open_parent(root: Path, parts: list[str], *, create: bool = False, owner: Owner = Owner()) -> int:
    """A descriptor of the directory holding the last component, reached without following links.
    The caller closes it."""
    fd = open_root(root)
    try:
        for name in parts[:-1]:
            try:
                child = _open_dir(fd, name, create=create, owner=owner)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SandboxFileError(f"{name!r} is not a directory") from exc
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _parent(root: Path, parts: list[str]) -> Iterator[int]:
    fd = _open_parent(root, parts)
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(root: Path, relative: str) -> tuple[int, int]:
    """(descriptor, size) of a regular file; FileNotFoundError for anything else, links included."""
    parts = split(relative)
    try:
        with _parent(root, parts) as parent:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent)
    except (SandboxFileError, NotADirectoryError) as exc:
        raise FileNotFoundError(relative) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileNotFoundError(relative) from exc
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileNotFoundError(relative)
    os.set_blocking(fd, True)
    return fd, info.st_size


def read_chunk(fd: int, size: int = CHUNK) -> bytes:
    return os.read(fd, size)


class Writer:
    """Writes a new file beside the target and renames it into place when done (or removes it on abort)."""

    def __init__(self, root: Path, relative: str, owner: Owner, mode: int = 0o644) -> None:
        self.parts = split(relative)
        self.owner = owner
        self.mode = mode
        self.parent = _open_parent(root, self.parts, create=True, owner=owner)
        self.temp = f".corral-upload-{secrets.token_hex(8)}"
        try:
            self.fd = os.open(self.temp, _CREATE_FLAGS, 0o600, dir_fd=self.parent)
        except BaseException:
            os.close(self.parent)
            raise
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
            self.size += written

    def commit(self) -> int:
        try:
            self.owner.apply(self.fd, self.mode)
            os.close(self.fd)
            self.fd = -1
            try:
                os.rename(self.temp, self.parts[-1], src_dir_fd=self.parent, dst_dir_fd=self.parent)
            except IsADirectoryError as exc:
                raise SandboxFileError(f"{self.parts[-1]!r} is a directory") from exc
        except BaseException:
            self.abort()
            raise
        os.close(self.parent)
        return self.size

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.temp, dir_fd=self.parent)
        except FileNotFoundError:
            pass
        os.close(self.parent)


def create_new(root: Path, stem: str, suffix: str, data: bytes, owner: Owner) -> str:
    """Write `data` under a fresh name `<stem>_<n><suffix>` in the root; a name that exists (or a
    planted link) is never reused. Returns the name."""
    fd_root = open_root(root)
    try:
        for n in range(1, 10_000):
            name = f"{stem}_{n}{suffix}"
            try:
                fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=fd_root)
            except FileExistsError:
                continue
            try:
                os.write(fd, data)
                owner.apply(fd, 0o644)
            finally:
                os.close(fd)
            return name
    finally:
        os.close(fd_root)
    raise FileExistsError(stem)


def delete(root: Path, relative: str) -> bool:
    """Unlink the entry itself (a link is removed, never its target); False if it is not there."""
    parts = split(relative)
    try:
        with _parent(root, parts) as parent:
            os.unlink(parts[-1], dir_fd=parent)
    except (FileNotFoundError, SandboxFileError, NotADirectoryError):
        return False
    except IsADirectoryError as exc:
        raise SandboxFileError(f"{relative!r} is a directory") from exc
    return True


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_files(root: Path) -> FileListing:
    """Every regular file under the root (bounded in count and depth), names checked as data."""
    listing = FileListing()
    fd = open_root(root)
    try:
        _walk(fd, "", 0, listing)
    finally:
        os.close(fd)
    listing.files.sort(key=lambda entry: entry.path)
    return listing


def _walk(fd: int, prefix: str, depth: int, listing: FileListing) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            name = entry.name
            if not _valid_name(name):
                listing.skipped.append(f"{prefix}{name.encode('utf-8', 'surrogateescape')!r}: name is not UTF-8")
                continue
            path = prefix + name
            if len(path) > MAX_PATH_CHARS:
                listing.skipped.append(f"{path[:80]}…: path longer than {MAX_PATH_CHARS} characters")
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                listing.skipped.append(f"{path}: symbolic link, not followed")
            elif stat.S_ISDIR(info.st_mode):
                if depth >= MAX_DEPTH:
                    listing.skipped.append(f"{path}/: deeper than {MAX_DEPTH} levels")
                    continue
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    _walk(child, path + "/", depth + 1, listing)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                if len(listing.files) >= MAX_LISTED:
                    listing.skipped.append(f"{path}: more than {MAX_LISTED} files, the rest are not listed")
                    return
                listing.files.append(FileEntry(path, info.st_size, info.st_mtime_ns))


def chown_tree(root: Path, owner: Owner) -> None:
    """Give every entry under the root to `owner` (a container that came back with another uid),
    changing links themselves, never their targets."""
    if owner.uid is None or owner.gid is None:
        return
    fd = open_root(root)
    try:
        os.fchown(fd, owner.uid, owner.gid)
        _chown_walk(fd, owner.uid, owner.gid, 0)
    finally:
        os.close(fd)


def _chown_walk(fd: int, uid: int, gid: int, depth: int) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            os.chown(entry.name, uid, gid, dir_fd=fd, follow_symlinks=False)
            if depth < MAX_DEPTH and entry.is_dir(follow_symlinks=False):
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    _chown_walk(child, uid, gid, depth + 1)
                finally:
                    os.close(child)
