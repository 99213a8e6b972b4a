"""``/ws/agent``: the credential is checked on the upgrade; everything after is ``AgentSocket``'s.

The legacy token, an operator's (or admin's) API key or a device credential may open it; a
device credential only for its own device (checked against the hello, in ``AgentSocket``).
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from monitor_server.agent_socket import AgentSocket
from monitor_server.http import JSONResponse, hub_of
from monitor_server.identity.authz import admit, refused
from monitor_server.identity.principals import Role


async def agent_socket(websocket: WebSocket) -> None:
    principal, refusal = await admit(websocket)
    if refusal is not None:
        await websocket.send_denial_response(refusal)
        return
    assert principal is not None
    if (detail := refused(principal, Role.OPERATOR, True, None)) is not None:
        await websocket.send_denial_response(JSONResponse({"detail": detail}, 403))
        return
    await websocket.accept()
    await AgentSocket(hub_of(websocket), websocket, principal).serve()
