"""``/ws/agent``: the token is checked on the upgrade; everything after is ``AgentSocket``'s."""

from __future__ import annotations

from starlette.websockets import WebSocket

from monitor_server.agent_socket import AgentSocket
from monitor_server.auth import presented_token
from monitor_server.http import JSONResponse
from monitor_server.hub import Hub
from monitor_server.throttle import client_address, too_many_attempts


async def agent_socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    client = client_address(websocket)
    if wait := hub.throttle.retry_after(client, hub.settings.auth_max_failures):
        await websocket.send_denial_response(too_many_attempts(wait))
        return
    presented = presented_token(websocket.headers)
    if not hub.token.matches(presented):
        if presented is not None:  # a guess; no token at all is not
            hub.throttle.failed(client)
        detail = {"detail": "missing or invalid token (X-Auth-Token or Authorization: Bearer)"}
        await websocket.send_denial_response(JSONResponse(detail, 401))
        return
    await websocket.accept()
    await AgentSocket(hub, websocket).serve()
