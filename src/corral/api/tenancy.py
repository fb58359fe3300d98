"""Which tenant a request belongs to."""

from starlette.requests import Request

DEFAULT_TENANT = "default"


def tenant_of(request: Request) -> str:
    """The tenant resolved by authentication, or the single open tenant when auth is off."""
    return getattr(request.state, "tenant", None) or DEFAULT_TENANT
