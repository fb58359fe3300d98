"""Storage errors."""


class NotFound(Exception):
    """The object does not exist, or belongs to another tenant (the two are never told apart)."""
