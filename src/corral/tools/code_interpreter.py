"""The `code_interpreter` tool: Python in the request's container, as OpenAI's items and events."""

from typing import Any

from corral.protocol.events import OutputWriter
from corral.protocol.hosted_tools import PYTHON_TOOL
from corral.protocol.ids import new_item_id
from corral.protocol.vocabulary import EventType
from corral.tools.base import ToolCall, ToolOutcome
from corral.tools.sandbox_calls import ContainerBinding, files_note, parse_arguments

DESCRIPTION = (
    "Run Python code in a persistent Jupyter kernel: variables, imports and files are kept between calls. "
    "The working directory is /mnt/data; read the user's files from there and save anything you create there "
    "(for example plt.savefig('/mnt/data/plot.png')), then refer to it as sandbox:/mnt/data/<name>. "
    "numpy, pandas and matplotlib are installed. There is no internet access. Print what you need to see."
)
MAX_MODEL_OUTPUT = 20_000


class CodeInterpreterTool:
    kind = "code_interpreter"

    def __init__(self, binding: ContainerBinding, *, file_url: str) -> None:
        self.binding = binding
        self.file_url = file_url

    def function_tools(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "name": PYTHON_TOOL,
                "description": DESCRIPTION,
                "parameters": {
                    "type": "object",
                    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
                    "required": ["code"],
                    "additionalProperties": False,
                },
                "strict": False,
            }
        ]

    def owns(self, name: str) -> bool:
        return name == PYTHON_TOOL

    async def prepare(self, emitter: OutputWriter) -> list[dict[str, Any]]:
        return []

    async def annotations(self, text: str) -> list[dict[str, Any]]:
        return await self.binding.annotations(text)

    async def execute(self, call: ToolCall, emitter: OutputWriter) -> ToolOutcome:
        code = str(parse_arguments(call.arguments, "code").get("code", ""))
        container_id = self.binding.container_id
        item: dict[str, Any] = {
            "type": "code_interpreter_call",
            "id": new_item_id("code_interpreter_call"),
            "status": "in_progress",
            "code": "",
            "container_id": container_id,
            "outputs": [],
        }
        index = await emitter.add_item(dict(item))
        await emitter.item_event(EventType.CODE_INTERPRETER_CALL_IN_PROGRESS, index)
        await emitter.item_event(EventType.CODE_INTERPRETER_CALL_CODE_DELTA, index, delta=code)
        await emitter.item_event(EventType.CODE_INTERPRETER_CALL_CODE_DONE, index, code=code)
        await emitter.item_event(EventType.CODE_INTERPRETER_CALL_INTERPRETING, index)
        result, files = await self.binding.containers.run_python(self.binding.tenant, container_id, code)
        logs = result.stdout + result.stderr + "".join(line + "\n" for line in result.display)
        if result.error:
            logs += "\n".join(result.error.get("traceback") or [f"{result.error['ename']}: {result.error['evalue']}"])
        outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs}] if logs else []
        by_path = {record["path"]: record for record in files}
        for name in result.images:
            record = by_path.get(f"/mnt/data/{name}")
            if record is not None:
                outputs.append(
                    {
                        "type": "image",
                        "url": self.file_url.format(container_id=container_id, file_id=record["id"]),
                    }
                )
        item.update(code=code, outputs=outputs, status="failed" if result.error and result.timed_out else "completed")
        await emitter.item_event(EventType.CODE_INTERPRETER_CALL_COMPLETED, index)
        await emitter.done_item(index, item)
        model_output = logs[:MAX_MODEL_OUTPUT] or "(no output)"
        if result.timed_out:
            model_output += "\n[the execution timed out and was interrupted]"
        return ToolOutcome(items=[item], model_output=model_output + files_note(files))
