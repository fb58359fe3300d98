"""Responses input items as Chat Completions messages.

Chat servers want every `tool` message right after the assistant message that holds its
`tool_calls` entry, and every tool call answered. So the items are read twice: first every tool
result is indexed by its call id, then the messages are written in order, each assistant message
followed at once by the results of its calls, wherever those results were in the input.

- `message` items keep their role (`developer` becomes `developer_role`, `system` by default,
  because llama.cpp and most chat templates know no other); consecutive assistant items — text
  and calls of one model turn — become one assistant message.
- `function_call`, and the calls replayed hosted-tool items stand for (`mcp_call`,
  `code_interpreter_call` as `python({"code"})`, `shell_call` as `shell({"commands"})`,
  `local_shell_call` as `local_shell({"command", …})`), become `tool_calls` entries; their
  results (`function_call_output`, `shell_call_output`, `local_shell_call_output`, or the
  output carried by the `mcp_call`/`code_interpreter_call` itself) become `tool` messages.
- `reasoning` items are dropped, or with `reasoning_field` set their text rides on the next
  assistant message under that key (e.g. `reasoning_content`, which llama.cpp and vLLM read back).
- MCP listings and approvals, item references and item types a chat model has no words for are
  dropped.

A result without its call and a call without its result are 400s with OpenAI's messages.
"""

from typing import Any

from corral.protocol.errors import bad_request
from corral.protocol.hosted_tools import (
    HOSTED_CALLS,
    format_shell_output,
    function_arguments,
    stand_in_call,
)
from corral.upstream.chat.content import message_content, text_content, tool_output_text

_CALLS = HOSTED_CALLS | {"function_call"}
_RESULTS = {
    "function_call_output": "function call output",
    "shell_call_output": "shell call output",
    "local_shell_call_output": "local shell call output",
}
_INPUT_ROLES = frozenset(("user", "system", "developer"))


def _result_key(item: dict[str, Any]) -> str | None:
    if item.get("type") == "local_shell_call_output":
        return item.get("call_id") or item.get("id")
    return item.get("call_id")


def _call_keys(item: dict[str, Any]) -> tuple[str, ...]:
    """The ids a result may name this call by (only calls answered by separate result items)."""
    kind = item.get("type")
    if kind in ("function_call", "shell_call"):
        return (item["call_id"],) if item.get("call_id") else ()
    if kind == "local_shell_call":
        return tuple(key for key in (item.get("call_id"), item.get("id")) if key)
    return ()


def _result_text(item: dict[str, Any], where: str) -> str:
    kind = item.get("type")
    if kind == "shell_call_output":
        output = item.get("output")
        return format_shell_output(output) if isinstance(output, list) else tool_output_text(output, where)
    return tool_output_text(item.get("output"), f"{where}.output")


def _index_results(items: list[dict[str, Any]]) -> dict[str, str]:
    calls = {key for item in items for key in _call_keys(item)}
    results: dict[str, str] = {}
    for index, item in enumerate(items):
        label = _RESULTS.get(item.get("type", "message"))
        if label is None:
            continue
        key = _result_key(item)
        if not key or key not in calls:
            raise bad_request(f"No tool call found for {label} with call_id {key}.", param="input")
        if key not in results:
            results[key] = _result_text(item, f"input[{index}]")
    return results


def _reasoning_text(item: dict[str, Any]) -> str:
    texts = [part.get("text") or "" for part in item.get("content") or [] if isinstance(part, dict)]
    if not any(texts):
        texts = [part.get("text") or "" for part in item.get("summary") or [] if isinstance(part, dict)]
    return "\n".join(text for text in texts if text)


class _Writer:
    def __init__(self, results: dict[str, str], developer_role: str, reasoning_field: str | None) -> None:
        self.results = results
        self.developer_role = developer_role
        self.reasoning_field = reasoning_field
        self.messages: list[dict[str, Any]] = []
        self.pending: dict[str, Any] | None = None
        # (tool_call id, what it is called in errors, ids a result item may use, result carried by
        # the call item itself)
        self.calls: list[tuple[str, str, tuple[str, ...], str | None]] = []
        self.reasoning: list[str] = []

    def flush(self) -> None:
        """Write the assistant message being assembled, then the results of its calls."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        if pending["content"] is None:
            # Chat Completions allows null content beside tool_calls, but llama-cpp-python's server
            # answers 500 to it; an empty string is accepted everywhere.
            pending["content"] = ""
        self.messages.append(pending)
        for call_id, label, keys, inline in self.calls:
            text = inline
            if text is None:
                text = next((self.results[key] for key in keys if key in self.results), None)
            if text is None:
                raise bad_request(f"No tool output found for {label} {call_id}.", param="input")
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        self.calls = []

    def other(self, message: dict[str, Any]) -> None:
        self.flush()
        self.reasoning.clear()
        self.messages.append(message)

    def _assistant(self, *, text: bool) -> dict[str, Any]:
        """The assistant message this text or call joins: the pending one, unless text follows calls."""
        message = self.pending
        if message is None or (text and self.calls):
            self.flush()
            message = self.pending = {"role": "assistant", "content": None}
        if self.reasoning:
            if self.reasoning_field:
                earlier = message.get(self.reasoning_field)
                message[self.reasoning_field] = "\n".join([*([earlier] if earlier else []), *self.reasoning])
            self.reasoning.clear()
        return message

    def assistant_text(self, text: str) -> None:
        message = self._assistant(text=True)
        message["content"] = text if message["content"] is None else f"{message['content']}\n{text}"

    def call(
        self,
        call_id: str,
        name: str,
        arguments: str,
        *,
        label: str = "function call",
        keys: tuple[str, ...] = (),
        inline: str | None = None,
    ) -> None:
        """Add a tool call; its result is `inline`, or the result item named by one of `keys`."""
        message = self._assistant(text=False)
        message.setdefault("tool_calls", []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
        self.calls.append((call_id, label, keys, inline))

    def add_reasoning(self, text: str) -> None:
        if text:
            self.reasoning.append(text)

    def finish(self) -> list[dict[str, Any]]:
        self.flush()
        return self.messages


def _message(writer: _Writer, item: dict[str, Any], where: str) -> None:
    role = item.get("role")
    if role == "assistant":
        writer.assistant_text(text_content(item.get("content"), f"{where}.content"))
        return
    if role not in _INPUT_ROLES:
        raise bad_request(
            f"Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system' and 'developer'.",
            param=f"{where}.role",
        )
    chat_role = writer.developer_role if role == "developer" else role
    content = message_content(item.get("content"), f"{where}.content", text_only=chat_role != "user")
    writer.other({"role": chat_role, "content": content})


def _call_item(writer: _Writer, item: dict[str, Any], where: str) -> None:
    kind = item["type"]
    if kind == "function_call":
        if not item.get("call_id"):
            raise bad_request(
                f"Missing required parameter: '{where}.call_id'.",
                param=f"{where}.call_id",
                code="missing_required_parameter",
            )
        name = item.get("name") or ""
        writer.call(item["call_id"], name, function_arguments(item.get("arguments")), keys=_call_keys(item))
        return
    call = stand_in_call(item)
    if call.output is not None:
        writer.call(call.call_id, call.name, call.arguments, inline=call.output)
    elif kind == "shell_call":
        writer.call(call.call_id, call.name, call.arguments, label="shell call", keys=(call.call_id,))
    else:
        writer.call(call.call_id, call.name, call.arguments, label="local shell call", keys=_call_keys(item))


def messages_from_items(
    items: list[dict[str, Any]],
    instructions: Any = None,
    *,
    developer_role: str = "system",
    reasoning_field: str | None = None,
) -> list[dict[str, Any]]:
    if isinstance(instructions, list):
        items = [*instructions, *items]
        instructions = None
    writer = _Writer(_index_results(items), developer_role, reasoning_field)
    if isinstance(instructions, str) and instructions:
        writer.other({"role": "system", "content": instructions})
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        where = f"input[{index}]"
        if kind == "message":
            _message(writer, item, where)
        elif kind in _CALLS:
            _call_item(writer, item, where)
        elif kind in _RESULTS:
            writer.flush()  # written after their call by flush(); they close the turn that made the call
            writer.reasoning.clear()
        elif kind == "reasoning":
            writer.add_reasoning(_reasoning_text(item))
        # anything else (mcp_list_tools, approvals, item_reference, unknown types) is not for the model
    return writer.finish()
