"""Sandbox hosts: the internal API that serves a local backend to gateways, and its client."""

from corral.sessions.backends.remote.client import RemoteSandboxBackend

__all__ = ["RemoteSandboxBackend"]
