"""Upstream model servers: workers, routing, and adapters for the APIs they speak."""
