"""JSON in and out for the REST routes: parsing with readable 422s, errors as ``{"detail": ...}``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.hub import Hub
from protocol import Conflict, NotFound, ProtocolError, SampleFields, describe
from protocol.rest import parse_ingest

M = TypeVar("M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before it is all in memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[M]) -> M:
    raw = await read_body(request, hub_of(request).settings.max_frame_bytes)
    if not raw.strip():
        raise HTTPException(422, "request body is required (JSON)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid body: {describe(exc)}") from None


async def read_ingest(request: Request) -> tuple[str, SampleFields, Mapping[str, Any]]:
    """The original agent's ``/ingest`` body: its device, the sample and the fields it does not name."""
    raw = await read_body(request, hub_of(request).settings.max_frame_bytes)
    if not raw.strip():
        raise HTTPException(422, "request body is required (JSON)")
    try:
        return parse_ingest(raw)
    except ProtocolError as exc:
        raise HTTPException(422, f"invalid body: {exc}") from None


def protected(endpoint: Endpoint) -> Endpoint:
    """Refuse with 401 unless the request carries the token (or another accepted credential)."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        if not hub_of(request).authorized(request):
            return JSONResponse({"detail": "missing or invalid token (X-Auth-Token)"}, 401)
        return await endpoint(request)

    return guarded


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 404)


async def conflict(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 409)


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: http_error,
    NotFound: not_found,
    Conflict: conflict,
}
