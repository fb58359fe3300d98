"""Validation of `POST /v1/responses` bodies as OpenAI words its errors.

The top level is strict (unknown parameters and wrong JSON types are rejected, like the live
service); items are checked for their required fields and types and otherwise passed through, so
output items replayed by SDKs with extra fields keep working. The SDK's own param TypedDicts are
not used for this: as unions of dozens of TypedDicts they give errors that name no field.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from corral.protocol.errors import bad_request
from corral.protocol.tool_choice import validate_tool_choice
from corral.protocol.validation import json_type_name, parse_body, validate_metadata

Include = Literal[
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "file_search_call.results",
    "message.input_image.image_url",
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "web_search_call.action.sources",
    "web_search_call.results",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ConversationRef(_Strict):
    id: StrictStr


class ContextManagement(_Strict):
    """`context_management[]`: server-side compaction past `compact_threshold` input tokens."""

    type: Literal["compaction"]
    compact_threshold: Annotated[StrictInt, Field(ge=1000)] | None = None


class CreateResponseBody(_Strict):
    model: StrictStr
    input: StrictStr | list[Any] | None = None
    instructions: StrictStr | list[Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=16)] | None = None
    max_tool_calls: Annotated[StrictInt, Field(ge=1)] | None = None
    previous_response_id: StrictStr | None = None
    conversation: StrictStr | ConversationRef | None = None
    store: StrictBool | None = None
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    background: StrictBool | None = None
    include: list[Include] | None = None
    metadata: dict[str, Any] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: StrictStr | None = None
    safety_identifier: Annotated[StrictStr, Field(max_length=64)] | None = None
    prompt_cache_key: StrictStr | None = None
    prompt_cache_retention: StrictStr | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: StrictStr | None = None
    prompt: dict[str, Any] | None = None
    context_management: list[ContextManagement] | None = None
    moderation: dict[str, Any] | None = None


_ITEM_REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "message": (("role", str), ("content", (str, list))),
    "function_call": (("call_id", str), ("name", str), ("arguments", str)),
    "function_call_output": (("call_id", str), ("output", (str, list))),
    "item_reference": (("id", str),),
    "mcp_approval_response": (("approval_request_id", str), ("approve", bool)),
    "shell_call_output": (("call_id", str), ("output", list)),
    "local_shell_call_output": (("id", str), ("output", str)),
    "shell_call": (("call_id", str),),
    "compaction": (("encrypted_content", str),),
}
_ROLES = ("user", "assistant", "system", "developer")
_PART_REQUIRED: dict[str, tuple[str, ...]] = {
    "input_text": ("text",),
    "output_text": ("text",),
    "refusal": ("refusal",),
    "input_image": (),
    "input_file": (),
    "input_audio": ("input_audio",),
    "summary_text": ("text",),
    "reasoning_text": ("text",),
    "text": ("text",),
}
_TYPE_NAMES = {str: "a string", list: "an array", bool: "a boolean", dict: "an object"}


def _type_error(param: str, expected: type | tuple[type, ...], value: Any) -> Exception:
    first = expected[0] if isinstance(expected, tuple) else expected
    return bad_request(
        f"Invalid type for '{param}': expected {_TYPE_NAMES.get(first, 'another type')}, "
        f"but got {json_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _invalid_value(value: Any, allowed: tuple[str, ...], param: str) -> Exception:
    return bad_request(
        f"Invalid value: '{value}'. Supported values are: " + ", ".join(f"'{name}'" for name in allowed) + ".",
        param=param,
        code="invalid_value",
    )


def _check_fields(item: dict[str, Any], required: tuple[tuple[str, Any], ...], where: str) -> None:
    for name, kind in required:
        if name not in item:
            param = f"{where}.{name}"
            raise bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
        value = item[name]
        if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
            raise _type_error(f"{where}.{name}", kind, value)


def validate_input_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise _type_error(where, dict, item)
    item_type = item.get("type", "message")
    if not isinstance(item_type, str):
        raise _type_error(f"{where}.type", str, item_type)
    required = _ITEM_REQUIRED.get(item_type)
    if required:
        _check_fields(item, required, where)
    if item_type == "message":
        if item["role"] not in _ROLES:
            raise bad_request(
                f"Invalid value: '{item['role']}'. Supported values are: 'user', 'assistant', 'system', "
                "and 'developer'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        if isinstance(item["content"], list):
            for index, part in enumerate(item["content"]):
                _validate_part(part, f"{where}.content[{index}]")


def _validate_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise _type_error(where, dict, part)
    part_type = part.get("type")
    if part_type not in _PART_REQUIRED:
        raise _invalid_value(part_type, tuple(_PART_REQUIRED), f"{where}.type")
    _check_fields(part, tuple((name, str) for name in _PART_REQUIRED[part_type] if name != "input_audio"), where)


def refuse_compaction_trigger(items: list[Any]) -> None:
    """A `compaction_trigger` item is refused, never sent on to a model that cannot read it:
    Corral compacts through `POST /v1/responses/compact` and `context_management`."""
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "compaction_trigger":
            raise bad_request(
                "Invalid value: 'compaction_trigger'. This gateway compacts through POST /v1/responses/compact "
                "and `context_management`.",
                param=f"input[{index}].type",
                code="invalid_value",
            )


MAX_SKILLS = 200


def validate_skills(skills: Any, param: str, *, local: bool = False) -> None:
    """The shape of a `skills` list: hosted skills are `skill_reference`s or `inline` zip bundles;
    a local shell's are `{name, description, path}` on the client's machine."""
    if skills is None:
        return
    if not isinstance(skills, list):
        raise _type_error(param, list, skills)
    if len(skills) > MAX_SKILLS:
        raise bad_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length {MAX_SKILLS}, "
            f"but got an array with length {len(skills)} instead.",
            param=param,
            code="array_above_max_length",
        )
    for index, skill in enumerate(skills):
        where = f"{param}[{index}]"
        if not isinstance(skill, dict):
            raise _type_error(where, dict, skill)
        if local:
            _check_fields(skill, (("name", str), ("description", str), ("path", str)), where)
            continue
        kind = skill.get("type")
        if kind == "skill_reference":
            _check_fields(skill, (("skill_id", str),), where)
            check_id_prefix(skill["skill_id"], "skill", f"{where}.skill_id")
            version = skill.get("version")
            if version is not None and (isinstance(version, bool) or not isinstance(version, int | str)):
                raise _type_error(f"{where}.version", str, version)
        elif kind == "inline":
            _check_fields(skill, (("name", str), ("description", str), ("source", dict)), where)
            source = skill["source"]
            if source.get("type") != "base64":
                raise _invalid_value(source.get("type"), ("base64",), f"{where}.source.type")
            if source.get("media_type") != "application/zip":
                raise _invalid_value(source.get("media_type"), ("application/zip",), f"{where}.source.media_type")
            _check_fields(source, (("data", str),), f"{where}.source")
        else:
            raise _invalid_value(kind, ("skill_reference", "inline"), f"{where}.type")


def validate_tool(tool: Any, where: str) -> None:
    if not isinstance(tool, dict):
        raise _type_error(where, dict, tool)
    tool_type = tool.get("type")
    if not isinstance(tool_type, str):
        raise bad_request(
            f"Missing required parameter: '{where}.type'.",
            param=f"{where}.type",
            code="missing_required_parameter",
        )
    if tool_type == "function":
        _check_fields(tool, (("name", str),), where)
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _type_error(f"{where}.parameters", dict, parameters)
    elif tool_type == "code_interpreter":
        if "container" not in tool:
            param = f"{where}.container"
            raise bad_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
        container = tool["container"]
        if isinstance(container, dict):
            if container.get("type") != "auto":
                raise _invalid_value(container.get("type"), ("auto",), f"{where}.container.type")
        elif not isinstance(container, str):
            raise _type_error(f"{where}.container", str, container)
    elif tool_type == "shell":
        environment = tool.get("environment")
        if environment is not None:
            if not isinstance(environment, dict):
                raise _type_error(f"{where}.environment", dict, environment)
            kind = environment.get("type")
            if kind not in ("container_auto", "container_reference", "local"):
                raise bad_request(
                    f"Invalid value: '{kind}'. Supported values are: 'container_auto', "
                    "'container_reference', and 'local'.",
                    param=f"{where}.environment.type",
                    code="invalid_value",
                )
            if kind == "container_reference":
                _check_fields(environment, (("container_id", str),), f"{where}.environment")
                if "skills" in environment:
                    param = f"{where}.environment.skills"
                    raise bad_request(
                        f"Unknown parameter: '{param}'. Skills are mounted with 'container_auto', or given to "
                        "a container when it is created.",
                        param=param,
                        code="unknown_parameter",
                    )
            validate_skills(environment.get("skills"), f"{where}.environment.skills", local=kind == "local")


def check_id_prefix(value: str, prefix: str, param: str) -> None:
    """A malformed id is a 400 naming the expected prefix, as OpenAI answers; only a well-formed
    id that names nothing is a 404."""
    if not value.startswith(f"{prefix}_"):
        raise bad_request(
            f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix}'.",
            param=param,
            code="invalid_value",
        )


def validate_create_body(body: Any) -> CreateResponseBody:
    """Validate a create body; raises APIError(400) naming the first bad field."""
    parsed = parse_body(CreateResponseBody, body)
    if parsed.previous_response_id is not None and parsed.conversation is not None:
        raise bad_request(
            "Mutually exclusive parameters: Ensure you are only providing one of: 'previous_response_id' or "
            "'conversation'.",
            param="conversation",
            code="mutually_exclusive_parameters",
        )
    if parsed.metadata is not None:
        validate_metadata(parsed.metadata)
    if isinstance(parsed.input, list):
        for index, item in enumerate(parsed.input):
            validate_input_item(item, f"input[{index}]")
        refuse_compaction_trigger(parsed.input)
    for index, tool in enumerate(parsed.tools or []):
        validate_tool(tool, f"tools[{index}]")
    validate_tool_choice(parsed.tool_choice, parsed.tools)
    if parsed.conversation is not None:
        conversation_id = parsed.conversation if isinstance(parsed.conversation, str) else parsed.conversation.id
        check_id_prefix(conversation_id, "conv", "conversation")
    if parsed.background and parsed.store is False:
        raise bad_request("Background mode requires 'store' to be true.", param="background")
    return parsed


class InputTokensBody(_Strict):
    """`POST /v1/responses/input_tokens`: the parts of a create body that make up the model's input."""

    model: StrictStr
    input: StrictStr | list[Any] | None = None
    instructions: StrictStr | list[Any] | None = None
    previous_response_id: StrictStr | None = None
    conversation: StrictStr | ConversationRef | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    personality: StrictStr | None = None


def validate_input_tokens_body(body: Any) -> CreateResponseBody:
    """A token-count body, checked as a create body would be; returned as the create body whose
    input it counts (never stored: `store` is false)."""
    parsed = parse_body(InputTokensBody, body)
    fields = parsed.model_dump(exclude_none=True, exclude={"personality"})
    return validate_create_body({**fields, "store": False})
