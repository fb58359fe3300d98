"""Translation between the Responses API and Chat Completions (no HTTP here).

- `build_chat_request`: a Responses execution request as a chat request body (`request.py`,
  messages in `messages.py`, content parts in `content.py`);
- `chat_completion_to_turn`: a ChatCompletion as a `TurnResult` (`response.py`);
- `ChatStreamTranslator`: chat chunks as Responses stream events and a `TurnResult` (`stream.py`);
- `ChatStreamError`: raised by the translator for an error reported inside the stream.
"""

from corral.upstream.chat.errors import ChatStreamError
from corral.upstream.chat.output import chat_usage
from corral.upstream.chat.request import build_chat_request
from corral.upstream.chat.response import chat_completion_to_turn
from corral.upstream.chat.stream import ChatStreamTranslator

__all__ = [
    "ChatStreamError",
    "ChatStreamTranslator",
    "build_chat_request",
    "chat_completion_to_turn",
    "chat_usage",
]
