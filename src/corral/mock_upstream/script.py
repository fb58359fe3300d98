"""Reads a request (either API) and decides the scripted turn."""

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

_DIRECTIVE = re.compile(r"\[\[(\w[\w-]*)\s*(.*?)\]\]", re.S)
SUMMARY_REQUEST = "Summarize the conversation below."
"""How Corral's compaction asks for a summary: answered with the transcript's lines, shortened,
and never read for directives (the transcript quotes earlier turns' directives)."""


@dataclass
class Call:
    name: str
    arguments: str


@dataclass
class Turn:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    reasoning: str | None = None
    error_status: int | None = None
    die: bool = False
    fail: bool = False
    slow_ms: int = 0
    length: bool = False
    input_tokens: int = 0
    null_logprobs: bool = False
    """Send `logprobs: null` on text parts and events, as some Responses servers do."""


@dataclass
class Conversation:
    """The request reduced to what the script needs."""

    user_text: str
    tool_outputs: list[str]
    input_words: int


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _parse_call(spec: str) -> Call:
    name, _, arguments = spec.strip().partition(" ")
    arguments = arguments.strip() or "{}"
    orjson.loads(arguments)
    return Call(name, arguments)


def from_responses(body: dict[str, Any]) -> Conversation:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    user_text, words = "", 0
    outputs: list[str] = []
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            text = text_of(item.get("content"))
            words += len(text.split())
            if item.get("role") == "user":
                user_text, outputs = text, []
        elif kind == "function_call_output":
            outputs.append(text_of(item.get("output")))
    return Conversation(user_text, outputs, words)


def from_chat(body: dict[str, Any]) -> Conversation:
    user_text, words = "", 0
    outputs: list[str] = []
    for message in body.get("messages") or []:
        text = text_of(message.get("content"))
        words += len(text.split())
        if message.get("role") == "user":
            user_text, outputs = text, []
        elif message.get("role") == "tool":
            outputs.append(text)
    return Conversation(user_text, outputs, words)


def summary(transcript: str) -> str:
    lines = [_DIRECTIVE.sub("", line).strip() for line in transcript.splitlines()]
    return "Summary: " + " | ".join(line[:80] for line in lines if line and not line.startswith("<"))


def plan(conversation: Conversation) -> Turn:
    turn = Turn(input_tokens=max(conversation.input_words, 1))
    if conversation.user_text.startswith(SUMMARY_REQUEST):
        turn.text = summary(conversation.user_text[len(SUMMARY_REQUEST) :])
        return turn
    steps: list[list[Call]] = []
    for name, argument in _DIRECTIVE.findall(conversation.user_text):
        if name == "call":
            steps.append([_parse_call(argument)])
        elif name == "calls":
            steps.append([_parse_call(spec) for spec in argument.split(";;")])
        elif name == "error":
            turn.error_status = int(argument or 500)
        elif name == "die":
            turn.die = True
        elif name == "fail":
            turn.fail = True
        elif name == "slow":
            turn.slow_ms = int(argument or 50)
        elif name == "length":
            turn.length = True
        elif name == "null-logprobs":
            turn.null_logprobs = True
        elif name == "reasoning":
            turn.reasoning = "Let me think about this step by step."
        elif name == "say":
            turn.text = argument
    done = 0
    answered = len(conversation.tool_outputs)
    for step in steps:
        if answered >= done + len(step):
            done += len(step)
            continue
        turn.calls = step
        return turn
    if not turn.text:
        if conversation.tool_outputs:
            turn.text = f"Done. Last tool output: {conversation.tool_outputs[-1].strip()}"
        else:
            turn.text = f"You said: {_DIRECTIVE.sub('', conversation.user_text).strip()}"
    return turn


def deltas(text: str) -> list[str]:
    """The text in word-sized pieces, as a model would stream it."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]
