"""Sandbox backends: what actually runs containers (local bubblewrap today)."""
