"""The local sandbox backend: bubblewrap sandboxes on this host, one per container."""

from corral.sessions.backends.local.backend import LocalSandboxBackend

__all__ = ["LocalSandboxBackend"]
