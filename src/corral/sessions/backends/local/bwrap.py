"""The bubblewrap command line of a sandbox: every namespace unshared, a read-only system, only the
container's own directory writable, and a syscall filter (see seccomp.py)."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SANDBOX_DATA = "/mnt/data"
SANDBOX_RUN = "/run/corral"
SANDBOX_SKILLS = "/mnt/skills"
SKILLS_DIR = "skills"
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


SANDBOX_VENV = "/opt/venv"


@dataclass(frozen=True)
class PythonLayout:
    """How the sandbox sees its interpreter: a virtualenv is mounted at /opt/venv (so no host path
    shows), and a base installation outside /usr at its own path."""

    binds: tuple[tuple[str, str], ...]
    interpreter: str
    bin_dir: str


def python_layout(python: str) -> PythonLayout:
    interpreter = Path(python)
    prefix = interpreter.parent.parent
    binds: list[tuple[str, str]] = []
    config = prefix / "pyvenv.cfg"
    if config.exists():
        binds.append((str(prefix), SANDBOX_VENV))
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            home = Path(value.strip()).parent
            if key.strip() == "home" and not str(home).startswith("/usr"):
                binds.append((str(home), str(home)))
        inside = f"{SANDBOX_VENV}/bin/{interpreter.name}"
        return PythonLayout(tuple(binds), inside, f"{SANDBOX_VENV}/bin")
    if not str(prefix).startswith("/usr"):
        binds.append((str(prefix), str(prefix)))
    return PythonLayout(tuple(binds), str(interpreter), str(interpreter.parent))


def _parents(path: str) -> list[str]:
    """Traversable parent directories (bwrap would make them 0700 when it runs as root)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:depth])]
    return args


SANDBOX_HOSTNAME = "sandbox"


@dataclass(frozen=True)
class BwrapInvocation:
    """A sandbox's bubblewrap call, split in two. `options` name host paths (bind sources), so they
    reach bwrap through a descriptor (`--args FD`) rather than its command line, which every process
    in the sandbox can read as /proc/1/cmdline. `command` is what runs inside, in sandbox paths."""

    options: list[str]
    command: list[str]

    def options_data(self) -> bytes:
        """`options` in the form `--args` reads: each argument followed by a NUL byte."""
        return b"".join(os.fsencode(option) + b"\0" for option in self.options)

    def argv(self, *, args_fd: int, seccomp_fd: int) -> list[str]:
        """The command line to execute with both descriptors open (bwrap reads and closes them)."""
        bwrap = shutil.which("bwrap") or "bwrap"
        return [bwrap, "--args", str(args_fd), "--seccomp", str(seccomp_fd), "--", *self.command]


def bwrap_invocation(
    data_dir: Path, run_dir: Path, python: str, identity: SandboxIdentity, argv: list[str]
) -> BwrapInvocation:
    """The sandbox of a container whose directory holds `data` (its disk, /mnt/data) and, when it
    has one, `skills` (root's, read-only at /mnt/skills)."""
    options = [
        *identity.namespaces(),
        "--hostname", SANDBOX_HOSTNAME,
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
            options += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    layout = python_layout(python)
    for source, target in layout.binds:
        options += _parents(target)
        options += ["--ro-bind", source, target]
    options += [
        "--bind", str(data_dir), SANDBOX_DATA,
        "--bind", str(run_dir), SANDBOX_RUN,
        "--ro-bind-try", str(data_dir.parent / SKILLS_DIR), SANDBOX_SKILLS,
        "--chdir", SANDBOX_DATA,
        "--clearenv",
        "--setenv", "HOME", "/tmp",
        "--setenv", "PATH", f"{layout.bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "MPLBACKEND", "module://matplotlib_inline.backend_inline",
        "--setenv", "MPLCONFIGDIR", "/tmp",
        "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
    ]  # fmt: skip
    return BwrapInvocation(options, [*identity.drop_privileges(), *argv])
