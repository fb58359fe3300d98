"""Input items in the shape OpenAI stores and lists them."""

from typing import Any

from corral.protocol.ids import new_item_id

_TEXT_PART = {"assistant": "output_text"}
_TEXT_EVENTS = frozenset(("response.output_text.delta", "response.output_text.done"))


def normalize_message_content(role: str, content: str | list[Any]) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    part_type = _TEXT_PART.get(role, "input_text")
    part: dict[str, Any] = {"type": part_type, "text": content}
    if part_type == "output_text":
        part["annotations"] = []
    return [part]


def normalize_input(raw: str | list[Any] | None) -> list[dict[str, Any]]:
    """The caller's input as a list of items, each with an id, as `input_items` lists them."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    items: list[dict[str, Any]] = []
    for original in raw:
        item = dict(original)
        item_type = item.setdefault("type", "message")
        if item_type == "message":
            item["content"] = normalize_message_content(item["role"], item["content"])
            item.setdefault("status", "completed")
        if item_type != "item_reference" and not item.get("id"):
            item["id"] = new_item_id(item_type)
        items.append(item)
    return items


def output_text(items: list[dict[str, Any]]) -> str:
    return "".join(
        part.get("text", "")
        for item in items
        if item.get("type") == "message"
        for part in item.get("content", [])
        if part.get("type") == "output_text"
    )


def complete_text_part(part: Any) -> None:
    """An `output_text` part with the `annotations` and `logprobs` lists OpenAI always sends.

    Upstreams that speak the Responses API (vLLM, llama.cpp…) send `logprobs: null` or leave it
    out; clients and schema checks expect `[]`.
    """
    if isinstance(part, dict) and part.get("type") == "output_text":
        if part.get("annotations") is None:
            part["annotations"] = []
        if part.get("logprobs") is None:
            part["logprobs"] = []


def complete_message(item: Any) -> None:
    if isinstance(item, dict) and item.get("type") == "message":
        for part in item.get("content") or ():
            complete_text_part(part)


def complete_event(event: dict[str, Any]) -> None:
    """The text parts an event carries, completed in place (`complete_text_part`)."""
    if "item" in event:
        complete_message(event["item"])
    if "part" in event:
        complete_text_part(event["part"])
    if event.get("type") in _TEXT_EVENTS and event.get("logprobs") is None:
        event["logprobs"] = []
    response = event.get("response")
    if isinstance(response, dict):
        for item in response.get("output") or ():
            complete_message(item)
