"""The functions that stand for OpenAI's hosted tools when the model is not OpenAI's, and how their
results read to the model."""

from typing import Any

import orjson

PYTHON_TOOL = "python"
SHELL_TOOL = "shell"
LOCAL_SHELL_TOOL = "local_shell"


def format_shell_output(entries: list[dict[str, Any]]) -> str:
    parts = []
    for entry in entries:
        outcome = entry.get("outcome") or {}
        status = f"exit code {outcome.get('exit_code')}" if outcome.get("type") == "exit" else "timed out"
        parts.append(f"[{status}]\nstdout:\n{entry.get('stdout', '')}\nstderr:\n{entry.get('stderr', '')}")
    return "\n".join(parts)


def format_code_outputs(outputs: list[dict[str, Any]] | None) -> str:
    lines = []
    for output in outputs or []:
        if output.get("type") == "logs":
            lines.append(output.get("logs", ""))
        elif output.get("type") == "image":
            lines.append(f"[image: {output.get('url', '')}]")
    return "\n".join(lines)


def mcp_error_text(error: Any) -> str:
    if isinstance(error, dict):
        if error.get("message"):
            return f"Error: {error['message']}"
        content = error.get("content")
        if isinstance(content, list):
            return "Error: " + " ".join(str(part.get("text", part)) for part in content if isinstance(part, dict))
        return f"Error: {orjson.dumps(error).decode()}"
    return f"Error: {error}"
