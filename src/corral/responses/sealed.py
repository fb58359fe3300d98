"""The `encrypted_content` of `compaction` items: sealed with a server key, opaque to clients.

A compaction item carries the summary that stands for the part of a conversation it replaced.
Clients hand it back in later requests (often statelessly), so it is sealed with AES-256-GCM
under a key only the gateway holds: the client can neither read it nor alter it unnoticed, and
the tenant's name is bound in as associated data, so one tenant cannot replay another's item.

The key is made once and kept in the database (as a blob, under a database lock), so every
replica that shares the database opens every replica's items.
"""

import base64
import binascii
import os
import weakref
from collections.abc import AsyncIterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from corral.protocol.errors import bad_request
from corral.responses.context import RequestContext
from corral.storage import Store

KEY_BLOB = "corral-secrets/compaction-key-v1"
_VERSION = b"\x01"
_NONCE_BYTES = 12
_ciphers: "weakref.WeakKeyDictionary[Store, AESGCM]" = weakref.WeakKeyDictionary()


async def _one(data: bytes) -> AsyncIterable[bytes]:
    yield data


async def _read_key(store: Store) -> bytes | None:
    chunks = await store.blobs.get(KEY_BLOB)
    if chunks is None:
        return None
    key = b"".join([chunk async for chunk in chunks])
    return key if len(key) == 32 else None


async def cipher(store: Store) -> AESGCM:
    """The AEAD under this database's compaction key, made on first use."""
    cached = _ciphers.get(store)
    if cached is not None:
        return cached
    async with store.lock(KEY_BLOB):
        key = await _read_key(store)
        if key is None:
            key = AESGCM.generate_key(bit_length=256)
            await store.blobs.put(KEY_BLOB, _one(key))
    aead = AESGCM(key)
    _ciphers[store] = aead
    return aead


def seal(aead: AESGCM, tenant: str, payload: dict[str, Any]) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = aead.encrypt(nonce, orjson.dumps(payload), tenant.encode())
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()


def unseal(aead: AESGCM, tenant: str, item: dict[str, Any], param: str) -> dict[str, Any]:
    """The payload of a compaction item; a 400 for one this gateway (and tenant) did not seal."""
    unverified = bad_request(
        f"The encrypted content for item {item.get('id') or 'compaction'} could not be verified.",
        param=param,
        code="invalid_encrypted_content",
    )
    try:
        raw = base64.urlsafe_b64decode(str(item.get("encrypted_content", "")).encode())
    except (binascii.Error, ValueError):
        raise unverified from None
    if len(raw) <= 1 + _NONCE_BYTES or raw[:1] != _VERSION:
        raise unverified
    try:
        payload = orjson.loads(aead.decrypt(raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :], tenant.encode()))
    except (InvalidTag, orjson.JSONDecodeError):
        raise unverified from None
    if not isinstance(payload, dict) or not isinstance(payload.get("summary"), str):
        raise unverified
    return payload


async def open_compactions(ctx: RequestContext, store: Store) -> None:
    """Open the compaction items the model's window needs, before anything is called upstream.

    Every compaction item in the caller's input is checked (a forged one is a 400). From the
    replayed history only the latest counts, and only when the caller sent none: the latest
    compaction item of the window replaces everything before it but the user's messages.
    """
    caller = [(index, item) for index, item in enumerate(ctx.input_items) if item.get("type") == "compaction"]
    stored = next((item for item in reversed(ctx.history) if item.get("type") == "compaction"), None)
    if not caller and stored is None:
        return
    aead = await cipher(store)
    for index, item in caller:
        ctx.summaries[id(item)] = unseal(aead, ctx.tenant, item, f"input[{index}].encrypted_content")["summary"]
    if not caller and stored is not None:
        param = "previous_response_id" if ctx.body.previous_response_id else "conversation"
        ctx.summaries[id(stored)] = unseal(aead, ctx.tenant, stored, param)["summary"]
