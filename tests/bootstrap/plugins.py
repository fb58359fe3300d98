"""Bootstrappers loaded by dotted path, as an operator would plug in their own."""

from typing import Any

from corral.protocol.errors import Unavailable
from corral.sessions.stateful_tools import BootstrapRequest, BootstrapResult

MARKER = "BOOTSTRAP-CONTEXT-7f3a"
calls: list[dict[str, Any]] = []


class RecordingBootstrapper:
    """Injects one marker item and records what it was shown. Header `x-bootstrap` steers failures."""

    async def bootstrap(self, request: BootstrapRequest) -> BootstrapResult:
        calls.append(
            {
                "kinds": request.kinds(),
                "history_len": len(request.history),
                "tenant": request.tenant,
                "response_id": request.response_id,
                "chain_key": request.chain_key,
            }
        )
        mode = request.headers.get("x-bootstrap")
        if mode == "fail":
            raise Unavailable("the sandbox pool is exhausted")
        if mode == "crash":
            raise RuntimeError("boom")
        item = {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": MARKER}]}
        return BootstrapResult(injected_items=[item], prepared={kind: {"token": "t"} for kind in request.kinds()})
