"""``/ws/agent``: the token is checked on the upgrade; everything after is ``AgentSocket``'s."""

from __future__ import annotations

from starlette.websockets import WebSocket

from monitor_server.agent_socket import AgentSocket
from monitor_server.auth import presented_token
from monitor_server.http import JSONResponse
from monitor_server.hub import Hub


async def agent_socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    if not hub.token.matches(presented_token(websocket.headers)):
        detail = {"detail": "missing or invalid token (X-Auth-Token or Authorization: Bearer)"}
        await websocket.send_denial_response(JSONResponse(detail, 401))
        return
    await websocket.accept()
    await AgentSocket(hub, websocket).serve()
