"""Which socket holds each device: one live ``AgentSocket`` per device id.

Nothing ever awaits a socket on behalf of another: a push only queues the frame on that
socket, whose own writer sends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor_server.store import Command

if TYPE_CHECKING:
    from monitor_server.agent_socket import AgentSocket


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, AgentSocket] = {}

    def register(self, socket: AgentSocket) -> AgentSocket | None:
        """Make ``socket`` current for its device; return the one it replaces, if any."""
        previous = self._sessions.get(socket.device_id)
        self._sessions[socket.device_id] = socket
        return previous

    def unregister(self, socket: AgentSocket) -> bool:
        """Forget ``socket`` if it is still current; False when it was replaced."""
        if self._sessions.get(socket.device_id) is not socket:
            return False
        del self._sessions[socket.device_id]
        return True

    def get(self, device_id: str) -> AgentSocket | None:
        return self._sessions.get(device_id)

    def push(self, command: Command) -> bool:
        socket = self._sessions.get(command.device_id)
        if socket is None:
            return False
        socket.push(command)
        return True

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._sessions
