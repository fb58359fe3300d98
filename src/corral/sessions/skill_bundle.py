"""Skill bundles (OpenAI's Skills API): a folder holding a `SKILL.md` manifest (YAML front matter
with `name` and `description`, then instructions) and any other files.

A bundle arrives as `files[]` parts, each named by its path inside one top-level folder, or as one
zip of that folder. Both are hostile input: paths, entry types, counts and sizes are checked, and a
zip is decompressed against a running bound (declared sizes are never trusted). What is kept is a
normalised zip whose entries are relative to the skill folder (`SKILL.md` at its root), regular
files only, sorted, with fixed timestamps: equal content gives equal bytes.

Pure functions, no I/O. Parsing a bundle of up to 25 MiB takes a while: callers on the event loop
run these in a thread.
"""

import hashlib
import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import yaml

from corral.protocol.errors import InvalidRequest

MAX_ENTRIES = 500
"""Files in one bundle (OpenAI takes at most 500 `files[]` parts)."""
MAX_TOTAL_BYTES = 25 * 1024 * 1024
"""Uncompressed bytes of all the files of one bundle."""
MAX_FILE_BYTES = MAX_TOTAL_BYTES
MAX_UPLOAD_BYTES = MAX_TOTAL_BYTES + 1024 * 1024
"""Bytes of an upload as sent (the zip, or the parts together): the content plus room for a zip's
own headers."""
MAX_PATH_CHARS = 512
MAX_SEGMENT_BYTES = 255
MAX_DEPTH = 32
MAX_ZIP_MEMBERS = 2 * MAX_ENTRIES
"""Zip members, directory entries included."""
MAX_CENTRAL_DIRECTORY_BYTES = 2 * 1024 * 1024
"""Checked before `zipfile` reads the directory: it makes an object per entry it finds there, and a
small zip can list hundreds of thousands."""
MAX_FRONT_MATTER_CHARS = 64 * 1024
MAX_DESCRIPTION_CHARS = 1024
MANIFEST = "SKILL.md"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
READ_CHUNK = 64 * 1024

_ROOT_FOLDER = "skill"
"""The folder a zip with SKILL.md at its root is taken as."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPENING = re.compile(r"---[ \t]*\r?\n")
_CLOSING = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP_MAGIC = (b"PK\x03\x04", _EOCD)


@dataclass(frozen=True)
class SkillBundle:
    name: str
    """From the front matter; a safe directory name (letters, digits, '.', '_', '-'; at most 64;
    not starting with '.' or '-')."""
    description: str
    archive: bytes
    """The normalised zip: paths relative to the skill folder, regular files only, sorted, fixed
    timestamps, modes 0o755 or 0o644."""
    digest: str
    """sha256 hex of `archive`."""
    files: int
    size: int
    """Total uncompressed bytes of the files."""


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]
    data: bytes
    executable: bool

    @property
    def path(self) -> str:
        return "/".join(self.parts)


def check_skill_name(name: str) -> None:
    """ValueError unless `name` can be a skill's folder (one safe path component)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name[:80]!r} is not a skill name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter, digit or '_'."
        )


def bundle_from_zip(data: bytes, *, param: str) -> SkillBundle:
    """A bundle from one zip holding one top-level folder, or the skill's files themselves (a
    SKILL.md at the zip's root, as some tools zip a skill)."""
    entries = _zip_entries(data, param=param)
    if any(len(entry.parts) == 1 and entry.parts[0].lower() == "skill.md" for entry in entries):
        entries = [_Entry((_ROOT_FOLDER, *entry.parts), entry.data, entry.executable) for entry in entries]
    return _bundle(entries, param=param)


def bundle_from_files(files: list[tuple[str, bytes]], *, param: str) -> SkillBundle:
    """A bundle from (path, bytes) pairs, each path inside one top-level folder."""
    if not files:
        raise InvalidRequest("A skill needs at least one file: its SKILL.md.", param=param)
    if len(files) > MAX_ENTRIES:
        raise InvalidRequest(f"A skill holds at most {MAX_ENTRIES} files; {len(files)} were sent.", param=param)
    total = sum(len(data) for _, data in files)
    if total > MAX_TOTAL_BYTES:
        raise _too_large(param)
    entries = []
    for path, data in files:
        parts = _check_path(path, param=param)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidRequest(f"File '{path}' is larger than {MAX_FILE_BYTES} bytes.", param=param)
        entries.append(_Entry(parts, data, False))
    return _bundle(entries, param=param)


def bundle_from_upload(parts: list[tuple[str, bytes]], *, param: str) -> SkillBundle:
    """A bundle from what an upload's `files` parts hold: one zip (by its name or its first bytes),
    else the folder's files."""
    if len(parts) == 1:
        filename, data = parts[0]
        if filename.lower().endswith(".zip") or data[:4] in _ZIP_MAGIC:
            return bundle_from_zip(data, param=param)
    return bundle_from_files(parts, param=param)


def bundle_entries(archive: bytes) -> list[tuple[str, bytes, bool]]:
    """(path relative to the skill folder, bytes, executable) of each file of a normalised archive,
    checked as any zip is."""
    return [(entry.path, entry.data, entry.executable) for entry in _zip_entries(archive, param="archive")]


def folder_archive(archive: bytes, folder: str) -> bytes:
    """A normalised archive with its files moved under `folder/`: the zip a caller downloads, which
    can be uploaded again as it is."""
    return _archive([(f"{folder}/{path}", data, executable) for path, data, executable in bundle_entries(archive)])


def _too_large(param: str) -> InvalidRequest:
    return InvalidRequest(f"The skill's files are larger than {MAX_TOTAL_BYTES} bytes uncompressed.", param=param)


def _check_path(path: Any, *, param: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not path:
        raise InvalidRequest("Each skill file needs a name: its path inside the skill's folder.", param=param)
    shown = repr(path[:80])
    if "\x00" in path or _CONTROL.search(path):
        raise InvalidRequest(f"Invalid path {shown}: control characters are not allowed.", param=param)
    if "\\" in path:
        raise InvalidRequest(f"Invalid path {shown}: use '/' between folders, not '\\'.", param=param)
    if path.startswith("/"):
        raise InvalidRequest(f"Invalid path {shown}: paths must be relative.", param=param)
    if len(path) > MAX_PATH_CHARS:
        raise InvalidRequest(f"Invalid path {shown}…: at most {MAX_PATH_CHARS} characters.", param=param)
    parts = tuple(path.split("/"))
    if ".." in parts:
        raise InvalidRequest(f"Invalid path {shown}: '..' is not allowed.", param=param)
    if any(part in ("", ".") for part in parts):
        raise InvalidRequest(f"Invalid path {shown}: empty or '.' path segment.", param=param)
    if len(parts) > MAX_DEPTH:
        raise InvalidRequest(f"Invalid path {shown}: more than {MAX_DEPTH} levels deep.", param=param)
    if any(len(part.encode()) > MAX_SEGMENT_BYTES for part in parts):
        raise InvalidRequest(f"Invalid path {shown}: a name longer than {MAX_SEGMENT_BYTES} bytes.", param=param)
    return parts


def _central_directory_bytes(data: bytes) -> int:
    """The central directory's size as the end record declares it (as `zipfile` reads it, zip64
    included); 0 where there is no end record (`zipfile` then reports the zip as bad)."""
    at = data.rfind(_EOCD, max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or len(data) - at < 22:
        return 0
    size = int.from_bytes(data[at + 12 : at + 16], "little")
    locator = at - 20
    record = locator - 56
    if record >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR and data[record : record + 4] == _ZIP64_EOCD:
        size = max(size, int.from_bytes(data[record + 40 : record + 48], "little"))
    return size


def _zip_entries(data: bytes, *, param: str) -> list[_Entry]:
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"The zip is larger than {MAX_UPLOAD_BYTES} bytes.", param=param)
    if _central_directory_bytes(data) > MAX_CENTRAL_DIRECTORY_BYTES:
        raise InvalidRequest(f"The zip lists too many entries: at most {MAX_ENTRIES} files.", param=param)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise InvalidRequest("The upload is not a valid zip file.", param=param) from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise InvalidRequest(f"The zip lists too many entries: at most {MAX_ENTRIES} files.", param=param)
        entries: list[_Entry] = []
        total = 0
        for info in members:
            name = info.orig_filename
            if name.startswith("__MACOSX/"):
                continue  # macOS's resource forks beside the folder, not part of it
            kind = stat.S_IFMT(info.external_attr >> 16)
            is_dir = name.endswith("/") or kind == stat.S_IFDIR
            parts = _check_path(name.rstrip("/") if is_dir else name, param=param)
            if kind == stat.S_IFLNK:
                raise InvalidRequest(f"Invalid entry '{name[:80]}': symbolic links are not allowed.", param=param)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise InvalidRequest(f"Invalid entry '{name[:80]}': only files and folders are allowed.", param=param)
            if is_dir:
                continue
            if info.flag_bits & 0x1:
                raise InvalidRequest(f"Invalid entry '{name[:80]}': encrypted entries are not allowed.", param=param)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                # bzip2 and lzma inflate a whole read at once, with no bound on the output
                raise InvalidRequest(
                    f"Invalid entry '{name[:80]}': only stored or deflated entries are supported.", param=param
                )
            if len(entries) == MAX_ENTRIES:
                raise InvalidRequest(f"A skill holds at most {MAX_ENTRIES} files.", param=param)
            content = _read_member(archive, info, limit=min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - total), param=param)
            total += len(content)
            entries.append(_Entry(parts, content, bool((info.external_attr >> 16) & 0o111)))
    return entries


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, limit: int, param: str) -> bytes:
    if info.file_size > limit:
        raise _too_large(param)
    chunks = []
    size = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(param)
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError):
        raise InvalidRequest(
            f"The zip is damaged or unsupported at '{info.orig_filename[:80]}'.", param=param
        ) from None
    return b"".join(chunks)


def _bundle(entries: list[_Entry], *, param: str) -> SkillBundle:
    if not entries:
        raise InvalidRequest("A skill needs at least one file: its SKILL.md.", param=param)
    loose = next((entry.path for entry in entries if len(entry.parts) == 1), None)
    if loose is not None:
        raise InvalidRequest(
            f"'{loose[:80]}' is not inside a folder: a skill's files must all be inside one top-level folder "
            "(e.g. 'my-skill/SKILL.md').",
            param=param,
        )
    folders = sorted({entry.parts[0] for entry in entries})
    if len(folders) > 1:
        shown = ", ".join(f"'{folder[:40]}'" for folder in folders[:5])
        raise InvalidRequest(
            f"A skill's files must all be inside one top-level folder; found {len(folders)}: {shown}.", param=param
        )
    folder = folders[0]
    files = [_Entry(entry.parts[1:], entry.data, entry.executable) for entry in entries]
    seen: set[tuple[str, ...]] = set()
    for entry in files:
        if entry.parts in seen:
            raise InvalidRequest(f"Duplicate path '{folder}/{entry.path}'.", param=param)
        seen.add(entry.parts)
    folders_inside = {entry.parts[:depth] for entry in files for depth in range(1, len(entry.parts))}
    clash = next((entry.path for entry in files if entry.parts in folders_inside), None)
    if clash is not None:
        raise InvalidRequest(f"'{folder}/{clash}' is both a file and a folder.", param=param)
    manifests = [entry for entry in files if len(entry.parts) == 1 and entry.parts[0].lower() == "skill.md"]
    if not manifests:
        raise InvalidRequest(f"No SKILL.md at the top of the skill's folder '{folder}'.", param=param)
    if len(manifests) > 1:
        raise InvalidRequest(f"More than one SKILL.md in the skill's folder '{folder}'.", param=param)
    manifest = manifests[0]
    name, description = _front_matter(manifest.data, param=param)
    size = sum(len(entry.data) for entry in files)
    if size > MAX_TOTAL_BYTES:
        raise _too_large(param)
    normalised = [(MANIFEST if entry is manifest else entry.path, entry.data, entry.executable) for entry in files]
    archive = _archive(normalised)
    return SkillBundle(
        name=name,
        description=description,
        archive=archive,
        digest=hashlib.sha256(archive).hexdigest(),
        files=len(files),
        size=size,
    )


def _front_matter(data: bytes, *, param: str) -> tuple[str, str]:
    """(name, description) from the YAML block between the `---` lines that open SKILL.md."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("SKILL.md must be UTF-8 text.", param=param) from None
    opening = _OPENING.match(text)
    if opening is None:
        raise InvalidRequest(
            "SKILL.md must begin with YAML front matter between '---' lines, with 'name' and 'description'.",
            param=param,
        )
    start = opening.end()
    closing = _CLOSING.search(text, start)
    if closing is None:
        raise InvalidRequest("SKILL.md's front matter has no closing '---' line.", param=param)
    if closing.start() - start > MAX_FRONT_MATTER_CHARS:
        raise InvalidRequest(
            f"SKILL.md's front matter is longer than {MAX_FRONT_MATTER_CHARS} characters.", param=param
        )
    block = text[start : closing.start()]
    try:
        matter = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise InvalidRequest(f"SKILL.md's front matter is not valid YAML: {problem}{where}.", param=param) from None
    except RecursionError:
        raise InvalidRequest("SKILL.md's front matter is nested too deeply.", param=param) from None
    if not isinstance(matter, dict):
        raise InvalidRequest(
            "SKILL.md's front matter must be a YAML mapping with 'name' and 'description'.", param=param
        )
    name = _text_field(matter, "name", param=param)
    try:
        check_skill_name(name)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid skill name in SKILL.md: {exc}", param=param) from None
    description = _text_field(matter, "description", param=param)
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidRequest(
            f"The skill's description in SKILL.md is longer than {MAX_DESCRIPTION_CHARS} characters.", param=param
        )
    return name, description


def _text_field(matter: dict[Any, Any], key: str, *, param: str) -> str:
    if key not in matter or matter[key] is None:
        raise InvalidRequest(f"SKILL.md's front matter has no '{key}'.", param=param)
    value = matter[key]
    if not isinstance(value, str):
        raise InvalidRequest(f"The '{key}' in SKILL.md's front matter must be a string.", param=param)
    value = value.strip()
    if "\x00" in value:
        raise InvalidRequest(f"The '{key}' in SKILL.md's front matter contains a NUL character.", param=param)
    if not value:
        raise InvalidRequest(f"The '{key}' in SKILL.md's front matter is empty.", param=param)
    return value


def _archive(files: list[tuple[str, bytes, bool]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data, executable in sorted(files, key=lambda file: file[0]):
            info = zipfile.ZipInfo(path, date_time=FIXED_TIME)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()
