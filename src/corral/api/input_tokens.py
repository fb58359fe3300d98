"""POST /v1/responses/input_tokens: how many input tokens a create request would send."""

from starlette.requests import Request
from starlette.responses import Response

from corral.api.http import JSONResponse, client_key, read_json
from corral.api.tenancy import tenant_of
from corral.responses.input_tokens import count_input_tokens as count
from corral.upstream.tokenize import UpstreamTokenizer

COUNTED_BY = "x-corral-tokenizer"
"""Response header naming how the tokens were counted (`upstream:tokenize`, `local:cl100k_base`…)."""


def _tokenizer(request: Request) -> UpstreamTokenizer:
    state = request.app.state
    tokenizer = getattr(state, "tokenizer", None)
    if tokenizer is None:
        tokenizer = state.tokenizer = UpstreamTokenizer(state.registry.http)
    return tokenizer


async def count_input_tokens(request: Request) -> Response:
    tokens, counted_by = await count(
        request.app.state.responses,
        _tokenizer(request),
        await read_json(request),
        tenant=tenant_of(request),
        headers=request.headers,
        client_key=client_key(request),
    )
    return JSONResponse({"object": "response.input_tokens", "input_tokens": tokens}, headers={COUNTED_BY: counted_by})
