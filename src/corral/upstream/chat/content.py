"""Responses content parts as Chat Completions message content.

Text-only content becomes a plain string (parts joined by newlines, as vLLM and llama.cpp join
text parts themselves). Images become `image_url` parts. Files given inline (`file_data`) are
made readable for any chat server: text files are inlined as text, images become `image_url`
parts, other files (PDFs, archives…) become a one-line note naming the file, because llama.cpp,
Ollama and vLLM all reject OpenAI's `file` part. Files by `file_id`/`file_url` and images by
`file_id` cannot be expressed at all: they are a 400 at preflight.
"""

import base64
import binascii
import mimetypes
from typing import Any

import orjson

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


def _decoded_text(payload: str) -> str | None:
    try:
        raw = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


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
    if is_text_mime(mime):
        text = _decoded_text(payload)
        if text is not None:
            return {"type": "text", "text": f"[file {filename}]\n{text}\n[end of file {filename}]"}
    size = len(payload) * 3 // 4 - payload.count("=", -2)
    return {
        "type": "text",
        "text": f"[file {filename} ({mime}, about {size} bytes): its content cannot be shown to this model]",
    }


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
