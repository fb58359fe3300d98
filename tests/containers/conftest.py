"""Gateways with real bubblewrap sandboxes."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.app import default_sandbox_python
from corral.config import SandboxSettings
from tests.conftest import UPSTREAM_APIS, Gateway, start_gateway
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox


def sandbox_support() -> str | None:
    """Why sandboxes cannot run here, or None."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (scripts/setup-sandbox.sh installs it)"
    probe = subprocess.run(
        ["bwrap", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="session")
def sandbox_python() -> str:
    reason = sandbox_support()
    if reason:
        pytest.skip(reason)
    return default_sandbox_python()


def sandbox_settings(python: str) -> SandboxSettings:
    return SandboxSettings(python=python, warm_pool_size=1, max_containers=16, execution_timeout_s=20)


@pytest.fixture(scope="module", params=UPSTREAM_APIS)
def sandboxed(
    request: pytest.FixtureRequest,
    mock_upstream: MockUpstream,
    sandbox_python: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    with start_gateway(
        mock_upstream, tmp_path_factory.mktemp("sandboxed"), api=request.param, sandbox=sandbox_settings(sandbox_python)
    ) as gateway:
        yield gateway


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
