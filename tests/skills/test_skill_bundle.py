"""Skill bundles parsed and normalised (`sessions.skill_bundle`): what a good bundle becomes, and
every hostile or broken one refused with a message that says why."""

import hashlib
import io
import stat
import struct
import zipfile
from collections.abc import Callable

import pytest

from corral.protocol.errors import InvalidRequest
from corral.sessions.skill_bundle import (
    FIXED_TIME,
    MAX_ENTRIES,
    MAX_TOTAL_BYTES,
    SkillBundle,
    bundle_entries,
    bundle_from_files,
    bundle_from_upload,
    bundle_from_zip,
    folder_archive,
)
from tests.skills.conftest import make_zip, manifest, skill_zip

REG = stat.S_IFREG | 0o644
EXE = stat.S_IFREG | 0o755
RUN_PY = b"import sys\nprint(sum(map(int, sys.argv[1:])))\n"


def members(archive: bytes) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.infolist()


def test_folder_files_become_a_normalised_archive() -> None:
    bundle = bundle_from_files(
        [
            ("math-reporter/scripts/run.py", RUN_PY),
            ("math-reporter/SKILL.md", manifest()),
            ("math-reporter/data/ünïcode name.txt", b"1 2 3"),
        ],
        param="files",
    )
    assert (bundle.name, bundle.description) == ("math-reporter", "Adds numbers and reports the sum.")
    assert bundle.files == 3
    assert bundle.size == len(RUN_PY) + len(manifest()) + 5
    assert bundle.digest == hashlib.sha256(bundle.archive).hexdigest()
    infos = members(bundle.archive)
    assert [info.filename for info in infos] == ["SKILL.md", "data/ünïcode name.txt", "scripts/run.py"]
    assert all(info.date_time == FIXED_TIME for info in infos)
    assert all(info.external_attr >> 16 == REG for info in infos), "folder uploads carry no modes: 0o644"
    assert bundle_entries(bundle.archive) == [
        ("SKILL.md", manifest(), False),
        ("data/ünïcode name.txt", b"1 2 3", False),
        ("scripts/run.py", RUN_PY, False),
    ]


def test_a_zip_keeps_the_executable_bit_and_drops_folders_and_timestamps() -> None:
    bundle = bundle_from_zip(skill_zip(), param="files")
    assert bundle_entries(bundle.archive) == [("SKILL.md", manifest(), False), ("scripts/run.py", RUN_PY, True)]
    modes = {info.filename: info.external_attr >> 16 for info in members(bundle.archive)}
    assert modes == {"SKILL.md": REG, "scripts/run.py": EXE}


def test_a_zip_of_the_skills_files_themselves_is_taken_as_its_folder() -> None:
    loose = bundle_from_zip(make_zip([("SKILL.md", manifest(), REG), ("scripts/run.py", RUN_PY, EXE)]), param="files")
    foldered = bundle_from_zip(skill_zip(), param="files")
    assert loose.digest == foldered.digest and loose.name == "math-reporter"


def test_equal_content_gives_equal_bytes() -> None:
    """Whatever the order, timestamps and compression of the upload, and whichever folder name."""
    first = bundle_from_zip(skill_zip(), param="files")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("other-folder/scripts/run.py", (2020, 5, 17, 10, 3, 4)), RUN_PY)
        archive.writestr(zipfile.ZipInfo("other-folder/SKILL.md", (2024, 1, 2, 3, 4, 6)), manifest())
    second = bundle_from_zip(buffer.getvalue(), param="files")
    as_files = bundle_from_files([("x/SKILL.md", manifest()), ("x/scripts/run.py", RUN_PY)], param="files")
    assert second.archive == as_files.archive and second.digest == as_files.digest
    assert first.digest != second.digest, "the executable bit is content"
    renamed = bundle_from_zip(folder_archive(first.archive, "math-reporter"), param="files")
    assert renamed.archive == first.archive, "a downloaded bundle uploads again unchanged"


def test_folder_archive_puts_everything_in_one_folder() -> None:
    bundle = bundle_from_zip(skill_zip(), param="files")
    download = folder_archive(bundle.archive, "math-reporter")
    assert [info.filename for info in members(download)] == ["math-reporter/SKILL.md", "math-reporter/scripts/run.py"]


def test_lowercase_manifest_is_accepted_and_named_skill_md() -> None:
    bundle = bundle_from_files([("s/skill.md", manifest("lower"))], param="files")
    assert bundle.name == "lower"
    assert [path for path, _, _ in bundle_entries(bundle.archive)] == ["SKILL.md"]


@pytest.mark.parametrize(
    ("text", "name", "description"),
    [
        (b"---\nname: 'quoted'\ndescription: \"Two: colons: here\"\n---\nbody", "quoted", "Two: colons: here"),
        (
            b"---\nname: folded\ndescription: >\n  Spans\n  two lines.\nlicense: MIT\n---\n",
            "folded",
            "Spans two lines.",
        ),
        (
            b"\xef\xbb\xbf---\r\nname: crlf_bom\r\ndescription: Windows file.\r\n---\r\nbody\r\n",
            "crlf_bom",
            "Windows file.",
        ),
        (b"---\nname: v1.2\ndescription: x\n---", "v1.2", "x"),
    ],
)
def test_front_matter(text: bytes, name: str, description: str) -> None:
    bundle = bundle_from_files([("folder/SKILL.md", text)], param="files")
    assert (bundle.name, bundle.description) == (name, description)


def test_only_the_top_block_is_front_matter() -> None:
    text = b"---\nname: first\ndescription: The real one.\n---\n\n---\nname: second\n---\n"
    assert bundle_from_files([("f/SKILL.md", text)], param="files").name == "first"


def test_macos_resource_forks_beside_the_folder_are_ignored() -> None:
    archive = make_zip(
        [("s/SKILL.md", manifest(), REG), ("__MACOSX/s/._SKILL.md", b"\0\5\26\7", REG), ("s/run.sh", b"", REG)]
    )
    assert [path for path, _, _ in bundle_entries(bundle_from_zip(archive, param="files").archive)] == [
        "SKILL.md",
        "run.sh",
    ]


def test_single_part_upload_is_a_zip_by_name_or_magic_else_a_file() -> None:
    assert bundle_from_upload([("bundle.zip", skill_zip())], param="files").name == "math-reporter"
    assert bundle_from_upload([("no-extension", skill_zip())], param="files").name == "math-reporter"
    assert bundle_from_upload([("only/SKILL.md", manifest("solo"))], param="files").name == "solo"


def _crafted_bomb() -> bytes:
    """A zip whose one entry claims 100 bytes and inflates to 30 MiB (headers rewritten)."""
    archive = make_zip([("bomb/SKILL.md", manifest(), REG), ("bomb/zeros.bin", b"\0" * (30 * 1024 * 1024), REG)])
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        info = opened.getinfo("bomb/zeros.bin")
        local = info.header_offset
    struct.pack_into("<I", data, local + 22, 100)
    central = data.rfind(b"PK\x01\x02")
    assert data[central + 46 : central + 46 + len("bomb/zeros.bin")] == b"bomb/zeros.bin"
    struct.pack_into("<I", data, central + 24, 100)
    return bytes(data)


def _long_directory() -> bytes:
    """Few bytes, but a central directory of thousands of entries (each a folder)."""
    return make_zip([(f"many/{index:05d}{'x' * 400}/", b"", stat.S_IFDIR | 0o755) for index in range(5000)])


def _member_flags(flags: int) -> bytes:
    """The skill zip with the central directory's flags of SKILL.md set to `flags`."""
    data = bytearray(skill_zip())
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len("math-reporter/SKILL.md")] != b"math-reporter/SKILL.md":
        central = data.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<H", data, central + 8, flags)
    return bytes(data)


def _nul_name() -> bytes:
    """`zipfile` cuts a name at NUL when it writes one: the NUL goes in afterwards."""
    archive = make_zip([("s/SKILL.md", manifest(), REG), ("s/a#NUL#b", b"", REG)])
    return archive.replace(b"#NUL#", b"\0\0\0\0\0")


ZIP_CASES: list[tuple[str, Callable[[], bytes], str]] = [
    ("not a zip", lambda: b"PK\x03\x04 but nothing else", "not a valid zip"),
    ("empty zip", lambda: make_zip([]), "at least one file"),
    ("no SKILL.md", lambda: make_zip([("s/README.md", b"hi", REG)]), "No SKILL.md"),
    ("nested SKILL.md only", lambda: make_zip([("s/sub/SKILL.md", manifest(), REG)]), "No SKILL.md"),
    (
        "two SKILL.md",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/skill.md", manifest(), REG)]),
        "More than one SKILL.md",
    ),
    (
        "two top folders",
        lambda: make_zip([("a/SKILL.md", manifest(), REG), ("b/run.py", b"", REG)]),
        "one top-level folder; found 2: 'a', 'b'",
    ),
    (
        "file outside the folder",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("README.md", b"", REG)]),
        "not inside a folder",
    ),
    ("dot-dot", lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/../../etc/x", b"", REG)]), "'..'"),
    ("absolute", lambda: make_zip([("/s/SKILL.md", manifest(), REG)]), "must be relative"),
    ("backslash", lambda: make_zip([("s\\SKILL.md", manifest(), REG)]), "not '\\'"),
    ("NUL in a name", lambda: _nul_name(), "control"),
    ("newline in a name", lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/a\nb", b"", REG)]), "control"),
    ("empty segment", lambda: make_zip([("s//SKILL.md", manifest(), REG)]), "empty or '.'"),
    (
        "symlink",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/passwd", b"/etc/passwd", stat.S_IFLNK | 0o777)]),
        "symbolic links",
    ),
    (
        "fifo",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/pipe", b"", stat.S_IFIFO | 0o644)]),
        "only files and folders",
    ),
    (
        "duplicate path",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/a.txt", b"1", REG), ("s/a.txt", b"2", REG)]),
        "Duplicate path 's/a.txt'",
    ),
    (
        "file and folder",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/a", b"1", REG), ("s/a/b", b"2", REG)]),
        "both a file and a folder",
    ),
    (
        "honest zip bomb",
        lambda: make_zip([("s/SKILL.md", manifest(), REG), ("s/zeros", b"\0" * (MAX_TOTAL_BYTES + 1), REG)]),
        "larger than 26214400 bytes uncompressed",
    ),
    (
        "bomb spread over files",
        lambda: make_zip(
            [("s/SKILL.md", manifest(), REG)]
            + [(f"s/z{index}", b"\0" * (MAX_TOTAL_BYTES // 3 + 1), REG) for index in range(3)]
        ),
        "larger than 26214400 bytes uncompressed",
    ),
    ("lying sizes", _crafted_bomb, "damaged"),
    (
        "too many files",
        lambda: make_zip([("s/SKILL.md", manifest(), REG)] + [(f"s/{i}", b"", REG) for i in range(MAX_ENTRIES)]),
        f"at most {MAX_ENTRIES} files",
    ),
    ("huge central directory", _long_directory, "too many entries"),
    ("encrypted", lambda: _member_flags(0x1), "encrypted"),
]


@pytest.mark.parametrize(("build", "message"), [case[1:] for case in ZIP_CASES], ids=[case[0] for case in ZIP_CASES])
def test_bad_zips_are_refused(build: Callable[[], bytes], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        bundle_from_zip(build(), param="tools[0].skills[1]")
    assert message in refused.value.message
    assert refused.value.param == "tools[0].skills[1]"


def _with_manifest(text: bytes) -> list[tuple[str, bytes]]:
    return [("s/SKILL.md", text)]


FILES_CASES: list[tuple[str, list[tuple[str, bytes]], str]] = [
    ("nothing", [], "at least one file"),
    ("no front matter", _with_manifest(b"# Just a title\n"), "must begin with YAML front matter"),
    ("unclosed", _with_manifest(b"---\nname: x\ndescription: y\n"), "no closing '---'"),
    ("bad YAML", _with_manifest(b"---\nname: [unclosed\ndescription: y\n---\n"), "not valid YAML"),
    ("YAML list", _with_manifest(b"---\n- name\n- description\n---\n"), "must be a YAML mapping"),
    ("missing name", _with_manifest(b"---\ndescription: y\n---\n"), "has no 'name'"),
    (
        "empty name",
        _with_manifest(b"---\nname: ''\ndescription: y\n---\n"),
        "'name' in SKILL.md's front matter is empty",
    ),
    ("missing description", _with_manifest(b"---\nname: x\n---\n"), "has no 'description'"),
    ("number name", _with_manifest(b"---\nname: 12\ndescription: y\n---\n"), "must be a string"),
    ("path name", _with_manifest(b"---\nname: ../../etc\ndescription: y\n---\n"), "Invalid skill name"),
    ("hidden name", _with_manifest(b"---\nname: .hidden\ndescription: y\n---\n"), "Invalid skill name"),
    ("dash name", _with_manifest(b"---\nname: -rf\ndescription: y\n---\n"), "Invalid skill name"),
    ("spaced name", _with_manifest(b"---\nname: my skill\ndescription: y\n---\n"), "Invalid skill name"),
    ("long name", _with_manifest(b"---\nname: " + b"a" * 65 + b"\ndescription: y\n---\n"), "Invalid skill name"),
    ("NUL description", _with_manifest(b'---\nname: x\ndescription: "a\\0b"\n---\n'), "NUL"),
    (
        "long description",
        _with_manifest(b"---\nname: x\ndescription: " + b"d" * 1025 + b"\n---\n"),
        "longer than 1024 characters",
    ),
    ("not UTF-8", _with_manifest(b"---\nname: x\ndescription: \xff\n---\n"), "UTF-8"),
    (
        "huge front matter",
        _with_manifest(b"---\nname: x\ndescription: y\n" + b"#" * (70 * 1024) + b"\n---\n"),
        "front matter is longer",
    ),
    ("deep YAML", _with_manifest(b"---\nname: " + b"[" * 5000 + b"\n---\n"), "nested too deeply"),
    ("absolute path", [("/etc/SKILL.md", manifest())], "must be relative"),
    ("dot-dot", [("s/SKILL.md", manifest()), ("s/../x", b"")], "'..'"),
    ("dot", [("s/SKILL.md", manifest()), ("s/./x", b"")], "empty or '.'"),
    ("no name", [("s/SKILL.md", manifest()), ("", b"")], "needs a name"),
    ("too long", [("s/SKILL.md", manifest()), ("s/" + "a/" * 300 + "x", b"")], "at most 512 characters"),
    ("too deep", [("s/SKILL.md", manifest()), ("s/" + "a/" * 40 + "x", b"")], "levels deep"),
    ("long segment", [("s/SKILL.md", manifest()), ("s/" + "a" * 256, b"")], "longer than 255 bytes"),
    ("duplicate", [("s/SKILL.md", manifest()), ("s/SKILL.md", manifest())], "Duplicate path"),
    ("two folders", [("a/SKILL.md", manifest()), ("b/x", b"")], "one top-level folder"),
    ("too many", [("s/SKILL.md", manifest())] + [(f"s/{i}", b"") for i in range(MAX_ENTRIES)], "at most 500 files"),
    ("too big", [("s/SKILL.md", manifest()), ("s/big", b"\0" * MAX_TOTAL_BYTES)], "larger than"),
]


@pytest.mark.parametrize(
    ("files", "message"), [case[1:] for case in FILES_CASES], ids=[case[0] for case in FILES_CASES]
)
def test_bad_folders_are_refused(files: list[tuple[str, bytes]], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        bundle_from_files(files, param="files")
    assert message in refused.value.message
    assert refused.value.param == "files"


def test_a_bomb_is_refused_before_it_is_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry that declares more than the bound is refused from its header; one that lies stops at
    what it declared (then fails its CRC): neither is inflated past the bound."""
    inflated: list[int] = []
    original = zipfile.ZipExtFile.read

    def counting(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        chunk = original(self, n)
        inflated.append(len(chunk))
        return chunk

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    honest = make_zip([("s/SKILL.md", manifest(), REG), ("s/zeros", b"\0" * (MAX_TOTAL_BYTES + 1), REG)])
    with pytest.raises(InvalidRequest, match="larger than"):
        bundle_from_zip(honest, param="files")
    assert sum(inflated) < 64 * 1024
    inflated.clear()
    with pytest.raises(InvalidRequest, match="damaged"):
        bundle_from_zip(_crafted_bomb(), param="files")
    assert sum(inflated) < 64 * 1024


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_only_stored_or_deflated_entries(method: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("s/SKILL.md", manifest())
    with pytest.raises(InvalidRequest, match="only stored or deflated"):
        bundle_from_zip(buffer.getvalue(), param="files")


def test_bundle_is_frozen() -> None:
    bundle = bundle_from_zip(skill_zip(), param="files")
    assert isinstance(bundle, SkillBundle)
    with pytest.raises(AttributeError):
        bundle.name = "other"  # type: ignore[misc]
