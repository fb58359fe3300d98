"""Authentication: API keys map to tenants; the admin key guards /admin.

Keys come from the config file, a keys file and the admin API (stored as SHA-256 hashes). With
no key configured at all, Corral serves one open tenant (and says so at start). `authorized`
(run by `corral.api.edge`) resolves the tenant once per request (or WebSocket connection), applies
the tenant's request quotas, and puts the tenant on the request state. Keys are never logged or echoed.
"""

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from corral.api.http import error_response
from corral.api.quotas import QuotaGate
from corral.api.tenancy import DEFAULT_TENANT
from corral.config import AuthSettings
from corral.protocol.errors import APIError
from corral.storage import Store

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/health/ready", "/metrics")
_CACHE_TTL_S = 30.0


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "sk-corral-" + secrets.token_urlsafe(32)


def _load_keys_file(settings: AuthSettings) -> dict[str, str]:
    keys: dict[str, str] = {}
    if settings.keys_file is None:
        return keys
    for number, line in enumerate(settings.keys_file.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise ValueError(f"{settings.keys_file}:{number}: expected `tenant sha256-hex`")
        keys[parts[1].lower()] = parts[0]
    return keys


class KeyRing:
    def __init__(self, settings: AuthSettings, store: Store) -> None:
        self.store = store
        self.static: dict[str, str] = _load_keys_file(settings)
        for entry in settings.keys:
            digest = (entry.key_sha256 or (sha256_hex(entry.key) if entry.key else "")).lower()
            if not digest:
                raise ValueError(f"auth.keys: tenant {entry.tenant!r} needs key_sha256 or key")
            self.static[digest] = entry.tenant
        self.admin = (
            settings.admin_key_sha256 or (sha256_hex(settings.admin_key) if settings.admin_key else "")
        ).lower()
        self.enabled = bool(self.static or self.admin)
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def tenant(self, key: str) -> str | None:
        digest = sha256_hex(key)
        if digest in self.static:
            return self.static[digest]
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        tenant = await self.store.keys.tenant_for(digest)
        self._cache[digest] = (tenant, now + (_CACHE_TTL_S if tenant else 2.0))
        return tenant

    def forget(self) -> None:
        self._cache.clear()

    def is_admin(self, key: str) -> bool:
        return bool(self.admin) and hmac.compare_digest(sha256_hex(key), self.admin)


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            return text[7:].strip() if text.lower().startswith("bearer ") else None
    return None


def unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key")


INTERNAL_PREFIX = "/internal/"
"""The sandbox-host API: authenticated by the hosts' shared secret, not by tenant keys."""


async def deny(exc: APIError, scope: Scope, receive: Receive, send: Send) -> None:
    """The error envelope with its status; a WebSocket upgrade gets it as the HTTP answer to the
    handshake where the server can send one, else the handshake is closed (policy violation)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    await error_response(exc)(scope, receive, send)


async def authorized(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app` for the caller the request's key names (the tenant on the request state), within
    the tenant's request quotas; answer 401/404/429 instead where the key or the quota says no.
    Health probes, /metrics and the internal sandbox-host API pass as they are."""
    path: str = scope["path"]
    if path in OPEN_PATHS or path.startswith(INTERNAL_PREFIX):
        await app(scope, receive, send)
        return
    state: Any = scope["app"].state
    keyring: KeyRing | None = getattr(state, "keyring", None)
    try:
        if (keyring is not None and keyring.enabled) or path.startswith("/admin"):
            tenant = await _authenticate(scope, keyring)
        else:
            tenant = DEFAULT_TENANT  # no key configured: one open tenant, nothing to look up
    except APIError as exc:
        await deny(exc, scope, receive, send)
        return
    scope.setdefault("state", {})["tenant"] = tenant
    if tenant is None or scope["type"] == "websocket":
        # A WebSocket connection takes the tenant's quotas per response, not for its lifetime.
        await app(scope, receive, send)
        return
    gate: QuotaGate = state.quotas
    try:
        release = gate.enter(tenant)
    except APIError as exc:
        await error_response(exc)(scope, receive, send)
        return
    try:
        await app(scope, receive, send)
    finally:
        release()


async def _authenticate(scope: Scope, keyring: KeyRing | None) -> str | None:
    key = bearer(scope)
    if scope["path"].startswith("/admin"):
        if keyring is None or not keyring.admin:
            raise APIError(404, "The admin API is not enabled (set auth.admin_key_sha256).")
        if key is None or not keyring.is_admin(key):
            raise unauthorized("Invalid admin key.")
        return None
    if keyring is None or not keyring.enabled:
        return DEFAULT_TENANT
    if key is None:
        raise unauthorized("You didn't provide an API key. Send it in the Authorization header as `Bearer <key>`.")
    tenant = await keyring.tenant(key)
    if tenant is None:
        raise unauthorized("Incorrect API key provided.")
    return tenant
