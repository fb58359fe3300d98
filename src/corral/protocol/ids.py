"""Ids in OpenAI's formats (`resp_…`, `msg_…`, `cntr_…`)."""

import secrets

ITEM_PREFIXES = {
    "message": "msg",
    "reasoning": "rs",
    "function_call": "fc",
    "function_call_output": "fco",
    "code_interpreter_call": "ci",
    "mcp_list_tools": "mcpl",
    "mcp_call": "mcp",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
    "shell_call": "sh",
    "shell_call_output": "sho",
    "local_shell_call": "lsh",
    "local_shell_call_output": "lsho",
    "web_search_call": "ws",
    "file_search_call": "fs",
    "custom_tool_call": "ctc",
    "compaction": "cmp",
}


def new_id(prefix: str) -> str:
    """A fresh id such as `resp_3f9a…` (48 hex characters, like OpenAI's)."""
    return f"{prefix}_{secrets.token_hex(24)}"


def new_item_id(item_type: str) -> str:
    return new_id(ITEM_PREFIXES.get(item_type, "item"))


def new_call_id() -> str:
    return new_id("call")
