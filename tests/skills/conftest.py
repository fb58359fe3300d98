"""Gateways for the Skills API tests: two tenants, on SQLite (bundles on local disk) and on
PostgreSQL (bundles in the database); and helpers that make bundles."""

import io
import stat
import warnings
import zipfile
from collections.abc import Iterator

import pytest

from corral.config import ApiKeySettings, AuthSettings
from tests.conftest import Gateway, gateway_on
from tests.support.mock import MockUpstream

KEY_A = "sk-skills-a-0123456789"
KEY_B = "sk-skills-b-9876543210"


def manifest(name: str = "math-reporter", description: str = "Adds numbers and reports the sum.") -> bytes:
    return f"---\nname: {name}\ndescription: {description}\n---\n\nRun `scripts/run.py` with the numbers.\n".encode()


def make_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (path, bytes, unix mode) entries; a mode of 0 writes no mode (as Windows tools do)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names, on purpose
        for path, data, mode in entries:
            info = zipfile.ZipInfo(path)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode:
                info.create_system = 3
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def skill_zip(folder: str = "math-reporter", **kwargs: str) -> bytes:
    return make_zip(
        [
            (f"{folder}/", b"", stat.S_IFDIR | 0o755),
            (f"{folder}/SKILL.md", manifest(**kwargs), stat.S_IFREG | 0o644),
            (f"{folder}/scripts/run.py", b"import sys\nprint(sum(map(int, sys.argv[1:])))\n", stat.S_IFREG | 0o755),
        ]
    )


def auth() -> AuthSettings:
    return AuthSettings(keys=[ApiKeySettings(tenant="team-a", key=KEY_A), ApiKeySettings(tenant="team-b", key=KEY_B)])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def skills_gateway(
    request: pytest.FixtureRequest, mock_upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with gateway_on(
        request.param, mock_upstream, tmp_path_factory.mktemp(f"skills-{request.param}"), auth=auth()
    ) as gateway:
        yield gateway
