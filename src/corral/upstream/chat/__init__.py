"""Translation between the Responses API and Chat Completions (no HTTP here)."""

from corral.upstream.chat.request import build_chat_request
from corral.upstream.chat.response import chat_completion_to_turn, chat_usage
from corral.upstream.chat.stream import ChatStreamTranslator

__all__ = ["ChatStreamTranslator", "build_chat_request", "chat_completion_to_turn", "chat_usage"]
