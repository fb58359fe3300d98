"""Skills on a local sandbox: read-only at /mnt/skills inside.

Each container's `skills` directory sits next to its disk, never on it: it is root's, and the
sandbox sees it through a read-only bind, so nothing in the container can change a skill or
plant a link the gateway would follow. A skill is unpacked beside its final place under a
temporary name and renamed in, so the container sees a whole skill or none.
"""

import os
import secrets
import shutil
from pathlib import Path

from corral.sessions.backends.base import SandboxFileError
from corral.sessions.backends.local import files
from corral.sessions.backends.local.bwrap import SKILLS_DIR
from corral.sessions.skill_bundle import bundle_entries, check_skill_name

__all__ = ["SKILLS_DIR", "install"]


def install(skills_root: Path, name: str, archive: bytes) -> None:
    """Unpack a normalised skill archive as `skills_root/name`, replacing what was there."""
    try:
        check_skill_name(name)
    except ValueError as exc:
        raise SandboxFileError(str(exc)) from exc
    skills_root.mkdir(mode=0o755, exist_ok=True)
    token = secrets.token_hex(6)
    staging = skills_root / f".staging-{token}"
    staging.mkdir(mode=0o755)
    replaced = skills_root / f".replaced-{token}"
    try:
        for path, data, executable in bundle_entries(archive):
            writer = files.Writer(staging, path, files.Owner(), mode=0o755 if executable else 0o644)
            try:
                writer.write(data)
            except BaseException:
                writer.abort()
                raise
            writer.commit()
        target = skills_root / name
        try:
            os.rename(target, replaced)
        except FileNotFoundError:
            pass
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
