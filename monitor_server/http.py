"""JSON in and out for the REST routes: parsing with readable 422s, errors as ``{"detail": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor_server.hub import Hub
from monitor_server.ingest import TRANSIENT_ERRORS
from protocol import Conflict, NotFound, ProtocolError, describe
from protocol.errors import Forbidden, Unauthenticated
from protocol.rest import parse_ingest

log = logging.getLogger("monitor_server.http")

M = TypeVar("M", bound=BaseModel)
RETRY_AFTER = 5  # seconds a client is told to wait while the database is failing
Endpoint = Callable[[Request], Awaitable[Response]]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def hub_of(conn: HTTPConnection) -> Hub:
    hub: Hub = conn.app.state.hub
    return hub


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before it is all in memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
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
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid body: {describe(exc)}") from None
    storable(parsed.model_dump(), "body")
    return parsed


async def read_ingest(request: Request) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """The original agent's ``/ingest`` body: its device, the sample and the fields it does not name."""
    raw = await read_body(request, hub_of(request).settings.max_frame_bytes)
    if not raw.strip():
        raise HTTPException(422, "request body is required (JSON)")
    try:
        device, fields, extra = parse_ingest(raw)
    except ProtocolError as exc:
        raise HTTPException(422, f"invalid body: {exc}") from None
    except RecursionError:  # msgspec's decoder past its nesting limit
        raise HTTPException(422, "invalid body: nested too deeply") from None
    except UnicodeDecodeError:  # msgspec raises it (not a DecodeError) for a string that is not UTF-8
        raise HTTPException(422, "invalid body: not valid UTF-8") from None
    storable(extra, "body")
    return device, fields, extra


def storable(value: Any, where: str) -> None:
    """422 unless ``value`` can be stored and sent back as JSON: orjson's limits, the store's own.

    JSON allows integers of any size and any nesting; orjson (store columns, REST answers, pushed
    frames) takes integers within 64 bits nested at most 255 deep.
    """
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise HTTPException(
            422, f"invalid {where}: {exc} (integers must fit 64 bits, nesting 255 levels)"
        ) from None


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method of the path: Starlette's 405 names only those of the first route that matched it."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is Match.PARTIAL:
            methods |= route.methods
    return ", ".join(sorted(methods))


async def not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 404)


async def conflict(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 409)


async def unauthenticated(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 401)


async def forbidden(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, 403)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """The database failed for a reason that passes (disk full, locked, read-only): retry later."""
    hub_of(request).writer.note_failure(exc)
    return unavailable(f"the database is unavailable ({exc}); retry later")


def unavailable(detail: str) -> Response:
    return JSONResponse({"detail": detail}, 503, headers={"Retry-After": str(RETRY_AFTER)})


class InternalErrors:
    """A bug answers 500 ``{"detail": "internal error"}`` and is logged once, with its traceback.

    The log names the method and path only: never the headers (tokens, cookies) nor the query.
    Starlette's own 500 handler re-raises to the server, which would log it a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:
                raise  # part of an answer is out: only the server can end the connection
            log.exception("internal error answering %s %.200s", scope["method"], scope["path"])
            await JSONResponse({"detail": "internal error"}, 500)(scope, receive, send)


MIDDLEWARE = [Middleware(InternalErrors)]

EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    HTTPException: http_error,
    NotFound: not_found,
    Conflict: conflict,
    Unauthenticated: unauthenticated,
    Forbidden: forbidden,
    **dict.fromkeys(TRANSIENT_ERRORS, store_unavailable),
}
