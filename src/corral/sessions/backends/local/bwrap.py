"""The bubblewrap command line of a sandbox: every namespace unshared, a read-only system, and only
the container's own directory writable."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SANDBOX_DATA = "/mnt/data"
SANDBOX_RUN = "/run/corral"
_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "ssl",
    "ca-certificates",
    "nsswitch.conf",
    "passwd",
    "group",
    "hosts",
    "mime.types",
    "fonts",
)


@dataclass(frozen=True)
class SandboxIdentity:
    """Who the sandbox runs as: a dedicated unprivileged user when the gateway is root."""

    uid: int
    gid: int

    def drop_privileges(self) -> list[str]:
        """Run inside the sandbox: a root-started sandbox becomes the unprivileged user, for good."""
        if os.getuid() != 0:
            return []
        return [
            "/usr/bin/setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]

    def namespaces(self) -> list[str]:
        """All namespaces unshared. Root skips the user namespace: started by root it would map to host root,
        so root's sandboxes drop to a real unprivileged uid instead (see drop_privileges)."""
        if os.getuid() != 0:
            return ["--unshare-all"]
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]


def python_prefixes(python: str) -> list[str]:
    """Directories the sandbox's interpreter needs (its venv and its base installation)."""
    interpreter = Path(python)
    prefixes = {str(interpreter.parent.parent)}
    config = interpreter.parent.parent / "pyvenv.cfg"
    if config.exists():
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                prefixes.add(str(Path(value.strip()).parent))
    return sorted(prefix for prefix in prefixes if not prefix.startswith("/usr"))


def _parents(path: str) -> list[str]:
    """Traversable parent directories (bwrap would make them 0700 when it runs as root)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:depth])]
    return args


def bwrap_command(data_dir: Path, run_dir: Path, python: str, identity: SandboxIdentity, argv: list[str]) -> list[str]:
    command = [
        shutil.which("bwrap") or "bwrap",
        *identity.namespaces(),
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--perms", "0755", "--dir", "/etc",
        "--perms", "0755", "--dir", "/mnt",
        "--perms", "0755", "--dir", "/run",
    ]  # fmt: skip
    for name in _ETC_FILES:
        if Path("/etc", name).exists():
            command += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for prefix in python_prefixes(python):
        command += _parents(prefix)
        command += ["--ro-bind", prefix, prefix]
    command += [
        "--bind", str(data_dir), SANDBOX_DATA,
        "--bind", str(run_dir), SANDBOX_RUN,
        "--chdir", SANDBOX_DATA,
        "--clearenv",
        "--setenv", "HOME", "/tmp",
        "--setenv", "PATH", f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "MPLBACKEND", "module://matplotlib_inline.backend_inline",
        "--setenv", "MPLCONFIGDIR", "/tmp",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--",
        *identity.drop_privileges(),
        *argv,
    ]  # fmt: skip
    return command
