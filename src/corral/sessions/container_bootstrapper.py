"""The default bootstrapper: resolve a container for `code_interpreter` and `shell`.

- explicit id (`container: "cntr_…"`, `environment: {type: container_reference}`): it must exist,
  be the tenant's and be running — unknown is 404, expired is 400 `Container is expired.`;
- `auto` (`container: {type: auto}`, `environment: {type: container_auto}`): reuse the most
  recent live container the same tools used in the replayed history; else the container this
  chain already got from an earlier (possibly concurrent) request; else a new one
  (`ContainerService.auto`, which holds a lock keyed by the chain across replicas). A history that
  mentions an expired or vanished container never fails the request.

`file_ids` on an auto container (checked first: an unknown id fails the request before a container
is made) are copied into its /mnt/data, each once: a reused container keeps the copies it has.

`skills` of an auto shell (inline bundles, `skill_reference`s) are resolved first too, then
mounted read-only at /mnt/skills/<name> in the auto container; a reused container keeps the skills
it has and gets only what it lacks.

All auto tools of one request share one container. It injects one developer message ahead of the
caller's input saying where the working directory is, which files are in it and which skills are
mounted.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from corral.protocol.errors import CorralError, InvalidRequest, NotFound
from corral.sessions.container_skills import SKILLS_ROOT, MountedSkill
from corral.sessions.containers import DATA_ROOT, ContainerService
from corral.sessions.files import FileService
from corral.sessions.requested_skills import resolve_skills
from corral.sessions.skill_bundle import SkillBundle
from corral.sessions.skills import SkillService
from corral.sessions.stateful_tools import (
    BootstrapRequest,
    BootstrapResult,
    StatefulToolDeclaration,
)

AUTO_NAME_PREFIX = "auto-"


def explicit_container_id(tool: StatefulToolDeclaration) -> str | None:
    declaration = tool.declaration
    if tool.kind == "code_interpreter":
        container = declaration.get("container")
        return container if isinstance(container, str) else None
    environment = declaration.get("environment") or {}
    return environment.get("container_id") if environment.get("type") == "container_reference" else None


def auto_options(tool: StatefulToolDeclaration) -> Mapping[str, Any]:
    if tool.kind == "code_interpreter":
        container = tool.declaration.get("container")
        return container if isinstance(container, Mapping) else {}
    return tool.declaration.get("environment") or {}


def containers_in_history(history: Sequence[Mapping[str, Any]], kinds: set[str]) -> list[str]:
    """Container ids used by these tools in the history, most recent first."""
    found: list[str] = []
    for item in reversed(history):
        container_id = None
        if item.get("type") == "code_interpreter_call" and "code_interpreter" in kinds:
            container_id = item.get("container_id")
        elif item.get("type") == "shell_call" and "shell" in kinds:
            container_id = (item.get("environment") or {}).get("container_id")
        if container_id and container_id not in found:
            found.append(container_id)
    return found


def context_message(
    container_id: str, files: list[dict[str, Any]], skills: Sequence[MountedSkill] = ()
) -> dict[str, Any]:
    if files:
        listing = "\n".join(f"- {f['path']} ({f['bytes']} bytes)" for f in files)
        body = f"Files currently in {DATA_ROOT}:\n{listing}"
    else:
        body = f"{DATA_ROOT} is empty."
    text = (
        f"You have a persistent sandbox (container {container_id}) with Python and a shell. Its working "
        f"directory is {DATA_ROOT}; files saved there persist across calls and can be offered to the user as "
        f"sandbox:{DATA_ROOT}/<name> links. {body}"
    )
    if skills:
        listing = "\n".join(f"- {skill.name}: {skill.description} ({skill.path}/SKILL.md)" for skill in skills)
        text += (
            f"\nSkills are mounted read-only under {SKILLS_ROOT}. When a task matches a skill, read its SKILL.md "
            f"first and follow it; paths in it are relative to the skill's folder.\n{listing}"
        )
    return {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]}


class ContainerBootstrapper:
    def __init__(
        self, containers: ContainerService, files: FileService | None = None, skills: SkillService | None = None
    ) -> None:
        self.containers = containers
        self.files = files
        self.skills = skills

    async def bootstrap(self, request: BootstrapRequest) -> BootstrapResult:
        prepared: dict[str, dict[str, Any]] = {}
        auto_tools = []
        for tool in request.tools:
            container_id = explicit_container_id(tool)
            if container_id is None:
                auto_tools.append(tool)
                continue
            await self._explicit(request, tool, container_id)
            prepared[tool.kind] = {"container_id": container_id}
        if auto_tools:
            container_id = await self._auto(request, auto_tools)
            for tool in auto_tools:
                prepared[tool.kind] = {"container_id": container_id}
        first = next(iter(prepared.values()))["container_id"]
        files, skills = await self.containers.contents(request.tenant, first)
        return BootstrapResult(injected_items=[context_message(first, files, skills)], prepared=prepared)

    async def _explicit(self, request: BootstrapRequest, tool: StatefulToolDeclaration, container_id: str) -> None:
        param = (
            f"tools[{tool.index}].container"
            if tool.kind == "code_interpreter"
            else (f"tools[{tool.index}].environment.container_id")
        )
        try:
            await self.containers.require_live(request.tenant, container_id)
        except NotFound as exc:
            raise exc.replace(param=param) from exc

    async def _auto(self, request: BootstrapRequest, tools: list[StatefulToolDeclaration]) -> str:
        """The shared auto container; a failure loses its `param`, which names a field of the
        Containers API, not of this request."""
        options = auto_options(tools[0])
        file_ids = await self._file_ids(request, tools)
        skills = await self._skills(request, tools)
        try:
            container_id = await self.containers.auto(
                request.tenant,
                used=containers_in_history(request.history, {tool.kind for tool in tools}),
                chain_key=request.chain_key,
                name=f"{AUTO_NAME_PREFIX}{request.chain_key or request.response_id}",
                memory_limit=options.get("memory_limit"),
            )
            if file_ids and self.files is not None:
                await self.files.copy_into_container(
                    self.containers, request.tenant, container_id, file_ids, skip_present=True
                )
            if skills:
                await self.containers.mount_skills(request.tenant, container_id, skills)
        except CorralError as exc:
            raise exc.replace(param=None) from exc
        return container_id

    async def _skills(self, request: BootstrapRequest, tools: list[StatefulToolDeclaration]) -> list[SkillBundle]:
        """The skills of every auto shell, resolved before any container is made."""
        found: dict[str, SkillBundle] = {}
        for tool in tools:
            specs = auto_options(tool).get("skills") if tool.kind == "shell" else None
            if specs:
                param = f"tools[{tool.index}].environment.skills"
                for bundle in await resolve_skills(self.skills, request.tenant, list(specs), param):
                    found[bundle.name] = bundle
        return list(found.values())

    async def _file_ids(self, request: BootstrapRequest, tools: list[StatefulToolDeclaration]) -> list[str]:
        """The `file_ids` of every auto tool, checked before any container is made (unknown is a 404)."""
        found: list[str] = []
        for tool in tools:
            file_ids = auto_options(tool).get("file_ids")
            if not file_ids:
                continue
            param = (
                f"tools[{tool.index}].container.file_ids"
                if tool.kind == "code_interpreter"
                else f"tools[{tool.index}].environment.file_ids"
            )
            if self.files is None:
                raise InvalidRequest("Files are not enabled on this gateway.", param=param)
            found.extend(await self.files.check_ids(request.tenant, list(file_ids), param))
        return list(dict.fromkeys(found))
