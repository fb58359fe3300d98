"""The example agent script runs against a gateway (here in front of the scripted model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Gateway
from tests.support.mock import MockUpstream

pytestmark = pytest.mark.sandbox
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code_interpreter_agent.py"


def test_code_interpreter_example(sandboxed: Gateway, mock: MockUpstream, tmp_path: Path) -> None:
    first = "[[call python " + json.dumps({"code": "data = [1, 2, 3]\nprint(sum(data))"}) + "]]"
    second = (
        "[[call python "
        + json.dumps({"code": "open('/mnt/data/total.txt', 'w').write(str(sum(data)))"})
        + "]] [[say Saved [total](sandbox:/mnt/data/total.txt)]]"
    )
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--base-url",
            sandboxed.url,
            "--model",
            "mock-model",
            "--download-to",
            str(tmp_path),
            first,
            second,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "[output]\n6" in result.stdout
    assert (tmp_path / "total.txt").read_text() == "6"
