"""The engine: one request's stages, from validation to persistence (see service.py for the order)."""
