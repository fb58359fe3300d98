"""`POST /v1/responses/compact`: the compacted window (`corral.responses.compaction`)."""

from starlette.requests import Request
from starlette.responses import Response

from corral.api.http import JSONResponse, client_key, read_json
from corral.api.tenancy import tenant_of
from corral.responses.compaction import compact


async def compact_response(request: Request) -> Response:
    state = request.app.state
    compacted = await compact(
        state.store,
        state.registry,
        await read_json(request),
        tenant=tenant_of(request),
        headers=request.headers,
        client_key=client_key(request),
    )
    return JSONResponse(compacted)
