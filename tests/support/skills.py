"""Skill bundles for tests: a zip with one top folder holding SKILL.md and an executable script."""

import base64
import io
import zipfile
from typing import Any

MANIFEST = "---\nname: {name}\ndescription: {description}\n---\n\nRun scripts/add.sh A B to add two numbers.\n"
ADD = "#!/bin/sh\necho $(($1 + $2))\n"


def skill_zip(name: str = "adder", description: str = "Adds two numbers.", script: str = ADD) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/SKILL.md", MANIFEST.format(name=name, description=description))
        info = zipfile.ZipInfo(f"{name}/scripts/add.sh")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, script)
    return buffer.getvalue()


def inline(name: str = "adder", description: str = "Adds two numbers.", data: bytes | None = None) -> dict[str, Any]:
    encoded = base64.b64encode(data if data is not None else skill_zip(name, description)).decode()
    return {
        "type": "inline",
        "name": name,
        "description": description,
        "source": {"type": "base64", "media_type": "application/zip", "data": encoded},
    }
