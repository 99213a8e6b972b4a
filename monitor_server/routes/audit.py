"""``GET /audit``: who did what to what, from where, when (admins only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of
from monitor_server.identity.authz import requires
from monitor_server.identity.principals import Role
from monitor_server.routes.params import int_param, time_param


@requires(Role.ADMIN)
async def audit_log(request: Request) -> Response:
    """Events newest first, from ``since`` (ISO-8601 or epoch seconds), at most ``limit`` (100, max 1000)."""
    since, limit = time_param(request, "since"), int_param(request, "limit", 100, 1000)
    events = await hub_of(request).identity.audit.recent(since, limit)
    return JSONResponse({"events": [e.to_json() for e in events]})
