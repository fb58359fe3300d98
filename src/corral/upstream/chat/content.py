"""Responses content parts as Chat Completions message content.

Text-only content becomes a plain string (parts joined by newlines, as vLLM and llama.cpp join
text parts themselves). Images become `image_url` parts. Files are made readable for any chat
server, because llama.cpp, Ollama and vLLM all reject OpenAI's `file` part: text files are inlined
as text, PDFs as the text of their pages (pypdf's text extraction: no OCR, no images), images
become `image_url` parts, other files (archives, spreadsheets…) a one-line note naming the file.

The engine resolves files by `file_id`/`file_url` (and images by `file_id`) before a request gets
here, with `readable_part` run off the event loop; a part still unresolved here is a 400.
"""

import base64
import binascii
import io
import logging
import mimetypes
from typing import Any

import orjson
import pypdf
import pypdf.errors

from corral.protocol.errors import bad_request

TEXT_PARTS = frozenset(("input_text", "output_text", "text", "summary_text", "reasoning_text"))
_TEXT_APPLICATIONS = frozenset(
    (
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/sql",
        "application/x-sh",
        "application/x-python",
        "application/x-python-code",
        "application/csv",
        "application/x-ndjson",
        "application/ld+json",
    )
)
_IMAGE_DETAILS = frozenset(("low", "high"))
MAX_EXTRACTED_CHARS = 1_000_000
"""Text kept of one file; the rest is cut with a note (a model's context holds far less anyway)."""

log = logging.getLogger(__name__)


def is_text_mime(mime: str) -> bool:
    return mime.startswith("text/") or mime in _TEXT_APPLICATIONS or mime.endswith(("+json", "+xml"))


def split_data_url(file_data: str, filename: str | None) -> tuple[str, str]:
    """`(mime type, base64 payload)` of a `data:` URL, or of bare base64 (type guessed from the name)."""
    if file_data.startswith("data:"):
        header, _, payload = file_data[5:].partition(",")
        mime = header.split(";", 1)[0].strip().lower()
        return mime or "application/octet-stream", payload
    guessed = mimetypes.guess_type(filename or "")[0]
    return guessed or "application/octet-stream", file_data


def _decoded(payload: str) -> bytes | None:
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None


def _capped(text: str) -> str:
    if len(text) <= MAX_EXTRACTED_CHARS:
        return text
    return text[:MAX_EXTRACTED_CHARS] + f"\n[… cut: the text goes on for {len(text) - MAX_EXTRACTED_CHARS} characters]"


def pdf_text(data: bytes) -> str | None:
    """The text layer of each page, pages marked; None for a PDF that cannot be read."""
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        log.info("a PDF input could not be read: %s", exc)
        return None
    return "\n".join(f"--- page {number} ---\n{text.strip()}" for number, text in enumerate(pages, 1))


def sniffed_mime(filename: str | None, data: bytes) -> str:
    """A file's type from its first bytes where they say it, else from its name."""
    for magic, mime in ((b"%PDF-", "application/pdf"), (b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg")):
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return mimetypes.guess_type(filename or "")[0] or "application/octet-stream"


def readable_part(filename: str, mime: str, data: bytes) -> dict[str, Any]:
    """A file as a Responses part a chat model can take: `input_text` (text files, PDFs, or a note
    saying the content cannot be shown) or `input_image`. CPU-bound for PDFs: call it off the loop."""
    if mime.startswith("image/"):
        return {"type": "input_image", "image_url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}
    text: str | None = None
    if mime == "application/pdf":
        extracted = pdf_text(data)
        if extracted is not None:
            text = f"[file {filename} (PDF, text extracted)]\n{_capped(extracted)}\n[end of file {filename}]"
    elif is_text_mime(mime) or mime == "application/octet-stream":
        try:
            text = f"[file {filename}]\n{_capped(data.decode('utf-8'))}\n[end of file {filename}]"
        except UnicodeDecodeError:
            text = None
    if text is None:
        text = f"[file {filename} ({mime}, about {len(data)} bytes): its content cannot be shown to this model]"
    return {"type": "input_text", "text": text}


def file_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    """An `input_file` part as a chat `text` or `image_url` part."""
    file_data = part.get("file_data")
    if not isinstance(file_data, str) or not file_data:
        source = "file_id" if part.get("file_id") else "file_url" if part.get("file_url") else "file_data"
        raise bad_request(
            "Chat Completions upstreams only take files inline, as `file_data` (not by file_id or file_url).",
            param=f"{where}.{source}",
        )
    filename = part.get("filename") or "file"
    mime, payload = split_data_url(file_data, part.get("filename"))
    if mime.startswith("image/"):
        url = file_data if file_data.startswith("data:") else f"data:{mime};base64,{payload}"
        return {"type": "image_url", "image_url": {"url": url}}
    data = _decoded(payload)
    if data is None:
        raise bad_request("The file's `file_data` is not valid base64.", param=f"{where}.file_data")
    if mime == "application/octet-stream":
        mime = sniffed_mime(part.get("filename"), data)
    readable = readable_part(filename, mime, data)
    return chat_part(readable, where)


def image_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad_request(
            "Chat Completions upstreams take images by URL or data URL only (not by file_id).",
            param=f"{where}.image_url",
        )
    image: dict[str, Any] = {"url": url}
    if part.get("detail") in _IMAGE_DETAILS:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def chat_part(part: Any, where: str) -> dict[str, Any]:
    """One Responses content part as one chat content part."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        return {"type": "text", "text": part.get("text") or ""}
    if kind == "refusal":
        return {"type": "text", "text": part.get("refusal") or ""}
    if kind == "input_image":
        return image_part(part, where)
    if kind == "input_file":
        return file_part(part, where)
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio") or {}}
    raise bad_request(
        f"Content part type '{kind}' cannot be sent to a Chat Completions upstream.", param=f"{where}.type"
    )


def message_content(content: Any, where: str, *, text_only: bool = False) -> str | list[dict[str, Any]]:
    """A message's content: a string when it is all text, else a list of chat parts.

    `text_only` (system and assistant messages, which chat servers take as text) makes a non-text
    part a 400.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [chat_part(part, f"{where}[{index}]") for index, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    if text_only:
        index = next(index for index, part in enumerate(parts) if part["type"] != "text")
        raise bad_request(
            "Only text can be sent in this message to a Chat Completions upstream.", param=f"{where}[{index}]"
        )
    return parts


def text_content(content: Any, where: str) -> str:
    """Content of a message chat servers take as text only (system, developer, assistant)."""
    converted = message_content(content, where, text_only=True)
    assert isinstance(converted, str)
    return converted


def tool_output_text(output: Any, where: str) -> str:
    """A tool result as the text of a chat `tool` message (chat tool messages carry text only).

    Images in a result become a `[image: <url>]` note (`[image]` for inline data).
    """
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        return orjson.dumps(output).decode()
    lines: list[str] = []
    for index, part in enumerate(output):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "input_image":
            url = part.get("image_url") or ""
            lines.append("[image]" if not url or url.startswith("data:") else f"[image: {url}]")
            continue
        converted = chat_part(part, f"{where}[{index}]")
        if converted["type"] == "text":
            lines.append(converted["text"])
        else:
            lines.append("[image]" if converted["type"] == "image_url" else f"[{converted['type']}]")
    return "\n".join(lines)
