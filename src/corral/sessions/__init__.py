"""Stateful-tool sessions: the bootstrap interface and the container service."""
