"""uvicorn's sans-I/O WebSocket protocol, telling the app *why* a socket died.

Stock uvicorn reports a keepalive ping timeout to the application as an anonymous 1005 once the
transport is gone; presence needs to say ``timeout`` rather than ``disconnected``, so the
timeout is reported as close code 1011 first.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class KeepaliveReportingProtocol(WebSocketsSansIOProtocol):
    def keepalive_timeout(self) -> None:
        if not (self.close_sent or self.transport.is_closing()):
            self.queue.put_nowait(
                {"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}
            )
        super().keepalive_timeout()
