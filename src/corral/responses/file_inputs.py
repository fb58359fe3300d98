"""Stage 4 (after routing, before preflight): file parts made readable for the chosen upstream.

`input_file` and `input_image` parts may name a file the model cannot reach: one of Corral's own
file ids, or (for Chat Completions upstreams, which take no files at all) a URL or inline data in a
format the model cannot read. Each is resolved once per request:

- Responses upstreams get `input_file` parts as they are, except a `file_id`, which means nothing
  to them (it is Corral's, not theirs): it becomes `file_data` (a data URL) with its filename;
- Chat Completions upstreams get every file as text the model can read (text files inlined, PDFs
  as their extracted text, see `upstream.chat.content.readable_part`) or as an image; a `file_url`
  is fetched by the gateway (bounded in size and time);
- an `input_image` with a `file_id` becomes a data URL for both.

The caller's input is never changed (it is what is stored): the resolved copies live in the
context and replace the originals only in what the upstream is sent. Replayed history items are
resolved the same way, so a conversation that once took a file keeps reading it.
"""

import asyncio
import base64
import binascii
import mimetypes
import posixpath
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from corral.protocol.errors import APIError, bad_request
from corral.responses.context import RequestContext
from corral.sessions.files import FileService
from corral.upstream.chat.content import readable_part, sniffed_mime, split_data_url

MAX_INPUT_FILE_BYTES = 32 * 1024 * 1024
"""The largest file a model is sent (OpenAI's own limit for file inputs)."""
URL_TIMEOUT_S = 30.0


def _needs_resolving(part: Any, chat: bool) -> bool:
    if not isinstance(part, dict):
        return False
    kind = part.get("type")
    if kind == "input_image":
        return bool(part.get("file_id")) and not part.get("image_url")
    if kind == "input_file":
        return chat or bool(part.get("file_id"))
    return False


def _has_files(item: dict[str, Any], chat: bool) -> bool:
    content = item.get("content")
    return isinstance(content, list) and any(_needs_resolving(part, chat) for part in content)


async def resolve_file_inputs(ctx: RequestContext, files: FileService | None) -> None:
    """Resolve the file parts of the replayed history and of the caller's input (see module doc)."""
    assert ctx.route is not None
    chat = ctx.route.worker.settings.api == "chat"
    resolver = _Resolver(ctx.tenant, files, chat)
    for index, item in enumerate(ctx.history):
        if _has_files(item, chat):
            ctx.history[index] = await resolver.item(item, "input")
    for index, item in enumerate(ctx.input_items):
        if _has_files(item, chat):
            ctx.resolved_inputs[id(item)] = await resolver.item(item, f"input[{index}]")


class _Resolver:
    def __init__(self, tenant: str, files: FileService | None, chat: bool) -> None:
        self.tenant = tenant
        self.files = files
        self.chat = chat

    async def item(self, item: dict[str, Any], where: str) -> dict[str, Any]:
        content = [
            await self.part(part, f"{where}.content[{index}]") if _needs_resolving(part, self.chat) else part
            for index, part in enumerate(item["content"])
        ]
        return {**item, "content": content}

    async def part(self, part: dict[str, Any], where: str) -> dict[str, Any]:
        if part["type"] == "input_image":
            _, mime, data = await self._by_id(part["file_id"], f"{where}.file_id")
            if not mime.startswith("image/"):
                raise bad_request(f"File {part['file_id']} is not an image ({mime}).", param=f"{where}.file_id")
            resolved = {key: value for key, value in part.items() if key != "file_id"}
            return {**resolved, "image_url": _data_url(mime, data)}
        if part.get("file_id"):
            filename, mime, data = await self._by_id(part["file_id"], f"{where}.file_id")
            filename = part.get("filename") or filename
        elif part.get("file_data"):
            filename, mime, data = self._inline(part, where)
        elif part.get("file_url"):
            filename, mime, data = await _fetch(part["file_url"], f"{where}.file_url")
            filename = part.get("filename") or filename
        else:
            raise bad_request(
                "An input_file needs one of 'file_id', 'file_data' or 'file_url'.", param=f"{where}.file_data"
            )
        if self.chat:
            return await asyncio.to_thread(readable_part, filename, mime, data)
        return {"type": "input_file", "filename": filename, "file_data": _data_url(mime, data)}

    async def _by_id(self, file_id: Any, param: str) -> tuple[str, str, bytes]:
        if not isinstance(file_id, str):
            raise bad_request("Invalid type for 'file_id': expected a string.", param=param, code="invalid_type")
        if self.files is None:
            raise bad_request("Files are not enabled on this gateway.", param=param)
        record, data = await self.files.read(self.tenant, file_id, max_bytes=MAX_INPUT_FILE_BYTES, param=param)
        return record["filename"], sniffed_mime(record["filename"], data), data

    def _inline(self, part: dict[str, Any], where: str) -> tuple[str, str, bytes]:
        filename = part.get("filename") or "file"
        mime, payload = split_data_url(part["file_data"], part.get("filename"))
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise bad_request("The file's 'file_data' is not valid base64.", param=f"{where}.file_data") from None
        if mime == "application/octet-stream":
            mime = sniffed_mime(filename, data)
        return filename, mime, data


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def _fetch(url: Any, param: str) -> tuple[str, str, bytes]:
    """A file by URL (http or https), at most `MAX_INPUT_FILE_BYTES`; any failure is the caller's 400."""
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise bad_request("'file_url' must be an http or https URL.", param=param)
    name = posixpath.basename(unquote(urlsplit(url).path)) or "file"
    try:
        timeout = aiohttp.ClientTimeout(total=URL_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise bad_request(f"Fetching the file at '{url}' answered HTTP {response.status}.", param=param)
            data = await _bounded_body(response.content.iter_chunked(64 * 1024), param)
            mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    except APIError:
        raise
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise bad_request(f"The file at '{url}' could not be fetched: {type(exc).__name__}.", param=param) from None
    if not mime or mime in ("application/octet-stream", "binary/octet-stream"):
        mime = sniffed_mime(name, data)
    elif mime == "text/plain" and mimetypes.guess_type(name)[0]:
        mime = mimetypes.guess_type(name)[0] or mime
    return name, mime, data


async def _bounded_body(chunks: Any, param: str) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_INPUT_FILE_BYTES:
            raise bad_request(f"The file is larger than {MAX_INPUT_FILE_BYTES} bytes.", param=param)
    return bytes(body)
