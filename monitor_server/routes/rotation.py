"""``POST /devices/{id}/rotate``: a new credential handed to the connected agent (DESIGN §10).

The hub stages the new credential (old and new both work), sends it over the agent's socket
and retires the old one only when the agent answers ``credential_saved``. An agent that dies or
loses the hub in between is never locked out: it presents the newest credential it saved and
falls back to the previous one, and presenting the new one confirms the rotation.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.params import device_id
from monitor_server.throttle import client_address
from protocol.errors import Conflict

ROTATION_WAIT = 10.0  # seconds the request waits for the agent's ``credential_saved``


@requires(Role.ADMIN)
async def rotate(request: Request) -> Response:
    """200 once the agent stored the new credential (the old one stopped working); 202 if it has
    not answered within ``ROTATION_WAIT`` (the old one works until it does); 409 if not connected."""
    hub, ident = hub_of(request), device_id(request)
    socket = hub.sessions.get(ident)
    if socket is None:
        raise Conflict(f"device {ident!r} is not connected: a credential is rotated over its socket")
    if (refusal := socket.rotation_refusal()) is not None:
        raise Conflict(refusal)
    secret = await hub.identity.enrollment.begin_rotation(ident)
    confirmed = socket.offer_credential(secret, principal_of(request), client_address(request))
    try:
        async with asyncio.timeout(ROTATION_WAIT):
            rotated = await asyncio.shield(confirmed)
    except TimeoutError:
        rotated = None
    if rotated is None:
        detail = "sent; the agent has not confirmed it stored it yet: the old credential works until then"
        return JSONResponse({"ok": True, "device_id": ident, "rotated": False, "detail": detail}, 202)
    return JSONResponse({"ok": True, "rotated": True, **rotated.to_json()})
