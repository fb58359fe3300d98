"""Storage errors, as domain errors: the HTTP edge decides what a caller is answered."""

from corral.protocol.errors import InvalidRequest, NotFound

__all__ = ["NotFound", "UnstorableText"]


class UnstorableText(InvalidRequest):
    """A text parameter holds a NUL character, which PostgreSQL text columns cannot hold.

    Raised for every database alike, so that such a value is a client error on SQLite too
    rather than an id that can be stored on one backend and not on the other.
    """

    def __init__(self) -> None:
        super().__init__(
            "Invalid value: string parameters cannot contain NUL (\\u0000) characters.", code="invalid_value"
        )
