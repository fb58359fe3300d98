"""Storage errors."""


class NotFound(Exception):
    """The object does not exist, or belongs to another tenant (the two are never told apart)."""


class UnstorableText(ValueError):
    """A text parameter holds a NUL character, which PostgreSQL text columns cannot hold.

    Raised for every database alike, so that such a value is a client error on SQLite too
    rather than an id that can be stored on one backend and not on the other.
    """
