"""The hosted `shell` tool: commands in the request's container, as OpenAI's items and events."""

from typing import Any

from corral.protocol.events import OutputWriter
from corral.protocol.hosted_tools import LOCAL_SHELL_TOOL, SHELL_TOOL, format_shell_output
from corral.protocol.ids import new_item_id
from corral.protocol.vocabulary import EventType
from corral.tools.base import ToolCall, ToolOutcome
from corral.tools.sandbox_calls import ContainerBinding, files_note, parse_arguments

DESCRIPTION = (
    "Run shell commands (bash) in a persistent sandbox whose working directory is /mnt/data, shared with the "
    "Python tool. Each command runs in order; its stdout, stderr and exit code come back. No internet access."
)
LOCAL_DESCRIPTION = (
    "Run shell commands on the user's own machine: the user's client runs them, in order, in its own working "
    "directory and environment, and returns each command's stdout, stderr and exit code."
)
"""`environment: {type: "local"}`: nothing about the gateway's sandbox (no /mnt/data, no network rule)
holds where the client runs the commands."""
DEFAULT_MAX_OUTPUT = 16_384


def shell_function(description: str = DESCRIPTION) -> dict[str, Any]:
    return {
        "type": "function",
        "name": SHELL_TOOL,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {
                "commands": {"type": "array", "items": {"type": "string"}},
                "timeout_ms": {"type": "integer"},
                "max_output_length": {"type": "integer"},
            },
            "required": ["commands"],
        },
        "strict": False,
    }


def parse_shell_arguments(arguments: str) -> tuple[list[str], int | None, int]:
    """(commands, timeout_ms, max_output_length) from the model's arguments, leniently."""
    parsed = parse_arguments(arguments, "commands")
    commands = parsed.get("commands") or []
    if isinstance(commands, str):
        commands = [commands]
    timeout_ms = parsed.get("timeout_ms") if isinstance(parsed.get("timeout_ms"), int) else None
    max_output = parsed.get("max_output_length")
    max_output = max_output if isinstance(max_output, int) and max_output > 0 else DEFAULT_MAX_OUTPUT
    return [str(command) for command in commands], timeout_ms, max_output


async def announce_shell_call(
    emitter: OutputWriter, call: ToolCall, environment: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str], int | None, int]:
    """Emit a `shell_call` item with its command events; returns it completed."""
    commands, timeout_ms, max_output = parse_shell_arguments(call.arguments)
    action: dict[str, Any] = {"commands": [], "timeout_ms": timeout_ms, "max_output_length": max_output}
    shell_call: dict[str, Any] = {
        "type": "shell_call",
        "id": new_item_id("shell_call"),
        "call_id": call.call_id,
        "action": action,
        "status": "in_progress",
        "environment": environment,
    }
    index = await emitter.add_item({**shell_call, "action": dict(action)})
    for number, command in enumerate(commands):
        common = {"output_index": index, "command_index": number}
        await emitter.emit({"type": EventType.SHELL_CALL_COMMAND_ADDED, **common, "command": ""})
        await emitter.emit({"type": EventType.SHELL_CALL_COMMAND_DELTA, **common, "delta": command})
        await emitter.emit({"type": EventType.SHELL_CALL_COMMAND_DONE, **common, "command": command})
    shell_call.update(action={**action, "commands": commands}, status="completed")
    await emitter.done_item(index, shell_call)
    return shell_call, commands, timeout_ms, max_output


class _ShellFunction:
    """The function both shell tools offer the model."""

    def function_tools(self) -> list[dict[str, Any]]:
        return [shell_function()]

    def owns(self, name: str) -> bool:
        return name == SHELL_TOOL

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        return []


class ClientShellTool(_ShellFunction):
    """`shell` with a local environment: the client runs the commands, so the call ends the response.
    The skills it declares are on the client's machine, at the paths it gives: the model is told
    where, and reads them with the shell like anything else there."""

    def __init__(self, skills: list[dict[str, Any]] | None = None) -> None:
        self.skills = skills or []

    def function_tools(self) -> list[dict[str, Any]]:
        description = LOCAL_DESCRIPTION
        if self.skills:
            listing = "\n".join(f"- {skill['name']}: {skill['description']} ({skill['path']})" for skill in self.skills)
            description += (
                "\nSkills on the user's machine: when a task matches one, read the SKILL.md in its folder first "
                f"and follow it.\n{listing}"
            )
        return [shell_function(description)]

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        shell_call, *_ = await announce_shell_call(emitter, call, {"type": "local"})
        return ToolOutcome(items=[shell_call], stop=True)


class ShellTool(_ShellFunction):
    """Hosted `shell`: the commands run in the request's container."""

    kind = "shell"

    def __init__(self, binding: ContainerBinding) -> None:
        self.binding = binding

    async def annotations(self, text: str) -> list[dict[str, Any]]:
        return await self.binding.annotations(text)

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        container_id = self.binding.container_id
        environment = {"type": "container_reference", "container_id": container_id}
        shell_call, commands, timeout_ms, max_output = await announce_shell_call(emitter, call, environment)

        output_item: dict[str, Any] = {
            "type": "shell_call_output",
            "id": new_item_id("shell_call_output"),
            "call_id": call.call_id,
            "output": [],
            "max_output_length": max_output,
            "status": "in_progress",
        }
        out_index = await emitter.add_item({**output_item, "output": []})
        entries = []
        all_files: list[dict[str, Any]] = []
        for number, command in enumerate(commands):
            result, files = await self.binding.containers.run_shell(
                self.binding.tenant,
                container_id,
                command,
                timeout_s=timeout_ms / 1000 if timeout_ms else None,
                max_output_length=max_output,
            )
            all_files.extend(files)
            outcome = {"type": "timeout"} if result.timed_out else {"type": "exit", "exit_code": result.exit_code}
            entry = {"stdout": result.stdout, "stderr": result.stderr, "outcome": outcome}
            entries.append(entry)
            await emitter.item_event(
                EventType.SHELL_CALL_OUTPUT_CONTENT_DELTA,
                out_index,
                command_index=number,
                delta={"stdout": result.stdout, "stderr": result.stderr},
            )
            await emitter.item_event(
                EventType.SHELL_CALL_OUTPUT_CONTENT_DONE, out_index, command_index=number, output=[entry]
            )
        output_item.update(output=entries, status="completed")
        await emitter.done_item(out_index, output_item)
        return ToolOutcome(
            items=[shell_call, output_item], model_output=format_shell_output(entries) + files_note(all_files)
        )


class LegacyLocalShellTool:
    """The legacy `local_shell` tool for upstreams that do not know it: the model's call comes back to
    the client as a `local_shell_call`, whose `local_shell_call_output` continues the chain."""

    def function_tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "name": LOCAL_SHELL_TOOL,
                "description": "Run a command (an argv list) on the user's machine; the user returns its output.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "command": {"type": "array", "items": {"type": "string"}},
                        "working_directory": {"type": "string"},
                        "timeout_ms": {"type": "integer"},
                    },
                    "required": ["command"],
                },
                "strict": False,
            }
        ]

    def owns(self, name: str) -> bool:
        return name == LOCAL_SHELL_TOOL

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        return []

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        arguments = parse_arguments(call.arguments, "command")
        command = arguments.get("command") or []
        if isinstance(command, str):
            command = command.split()
        action: dict[str, Any] = {
            "type": "exec",
            "command": [str(part) for part in command],
            "env": {},
            "timeout_ms": arguments.get("timeout_ms") if isinstance(arguments.get("timeout_ms"), int) else None,
            "working_directory": arguments.get("working_directory"),
            "user": None,
        }
        item = {
            "type": "local_shell_call",
            "id": new_item_id("local_shell_call"),
            "call_id": call.call_id,
            "status": "completed",
            "action": action,
        }
        index = await emitter.add_item({**item, "action": {**action, "command": []}})
        await emitter.done_item(index, item)
        return ToolOutcome(items=[item], stop=True)
