"""``/ws/ui``: a snapshot of the fleet, then every bus event, to one logged-in browser.

Refused before the handshake without a session cookie or from a foreign Origin. Each browser
reads from its own bounded bus subscription; one that falls behind is cut off (it reconnects and
resynchronises from a fresh snapshot) so it can never slow the hub or other browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from monitor_server.bus import Subscription
from monitor_server.events import HubEvent
from monitor_server.http import JSONResponse
from monitor_server.hub import Hub
from monitor_server.identity.events import IdentityEvent, SessionsEnded
from monitor_server.identity.principals import Principal
from monitor_server.identity.secrets import digest
from monitor_server.throttle import client_address, too_many_attempts
from monitor_server.ui.dashboard import Dashboard, dashboard_of
from monitor_server.ui.events import coalesce
from monitor_server.ui.session import COOKIE_NAME
from protocol.codes import UiCloseCode

log = logging.getLogger("monitor_server.ui_ws")

MAX_BATCH = 2000
SESSION_RECHECK = 30.0  # seconds between checks that the cookie is still valid while idle


async def ui_socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    dashboard = dashboard_of(websocket)
    # An address locked out for wrong tokens elsewhere is refused here too (cookies are not counted).
    if wait := hub.throttle.retry_after(client_address(websocket), hub.settings.auth_max_failures):
        await websocket.send_denial_response(too_many_attempts(wait))
        return
    principal = await dashboard.principal(websocket)
    refusal = _refusal(dashboard, websocket, principal)
    if refusal or principal is None:
        await websocket.send_denial_response(JSONResponse({"detail": refusal}, 403))
        return
    # Subscribe before reading the snapshot so nothing that happens in between is lost.
    async with hub.bus.subscribe(hub.settings.ui_queue_size) as subscription:
        await websocket.accept()
        browser = BrowserFeed(hub, dashboard, websocket, subscription, principal)
        stop_listening = hub.identity.listeners.add(browser.on_identity_event)
        try:
            await browser.serve()
        finally:
            stop_listening()


def _refusal(dashboard: Dashboard, websocket: WebSocket, principal: Principal | None) -> str | None:
    if principal is None:
        return "log in first: no valid session cookie"
    if not dashboard.origin_ok(websocket):
        return f"origin {websocket.headers.get('origin')!r} is not allowed"
    return None


class BrowserFeed:
    """One browser: its snapshot, then batches of events until it goes away or falls behind."""

    def __init__(
        self,
        hub: Hub,
        dashboard: Dashboard,
        websocket: WebSocket,
        subscription: Subscription,
        principal: Principal,
    ) -> None:
        self.hub = hub
        self.dashboard = dashboard
        self.websocket = websocket
        self.subscription = subscription
        self.principal = principal
        self.cookie = websocket.cookies.get(COOKIE_NAME, "")
        self._session_hash = digest(self.cookie)
        self._ended = asyncio.Event()

    def on_identity_event(self, event: IdentityEvent) -> None:
        """Logout, a password change or the user's removal ends this feed at once."""
        if not isinstance(event, SessionsEnded):
            return
        if event.session_hash == self._session_hash or (
            event.session_hash is None and event.user is not None and event.user == self.principal.user
        ):
            self._ended.set()

    async def serve(self) -> None:
        pump = asyncio.get_running_loop().create_task(self._pump())
        reader = asyncio.get_running_loop().create_task(self._read_until_closed())
        ended = asyncio.get_running_loop().create_task(self._ended.wait())
        try:
            await asyncio.wait({pump, reader, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended.done():
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)  # no send in flight while closing
                await self._close(UiCloseCode.SESSION_ENDED, "session ended")
        finally:
            for task in (pump, reader, ended):
                task.cancel()
            for outcome in await asyncio.gather(pump, reader, ended, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, WebSocketDisconnect):
                    log.warning("dashboard socket ended with an error", exc_info=outcome)

    async def _pump(self) -> None:
        devices = await self.hub.store.list_devices()
        listed = [self.hub.sessions.with_duplicate(d.to_json()) for d in devices]
        if not await self._send({"type": "snapshot", "devices": listed}):
            return
        while True:
            events = await self._next_batch()
            if events is None:
                log.warning(
                    "dashboard fell %d events behind; disconnecting it", self.hub.settings.ui_queue_size
                )
                await self._close(UiCloseCode.TOO_SLOW, "too slow: reconnect for a fresh snapshot")
                return
            if await self.hub.identity.authn.for_session(self.cookie) is None:
                await self._close(UiCloseCode.SESSION_ENDED, "session ended")
                return
            if not events:
                continue
            if not await self._send({"type": "events", "events": [e.to_json() for e in events]}):
                return

    async def _next_batch(self) -> list[HubEvent] | None:
        """Whatever is queued, samples coalesced per device; [] after an idle recheck period."""
        sub = self.subscription
        try:
            async with asyncio.timeout(SESSION_RECHECK):
                first = await sub.get()
        except TimeoutError:
            return []
        events = [first]
        while first is not None and sub.pending() and len(events) < MAX_BATCH:
            events.append(await sub.get())
        if any(event is None for event in events):
            return None
        return coalesce([e for e in events if e is not None])

    async def _send(self, frame: dict[str, Any]) -> bool:
        """Send within the timeout; a browser that stops reading is given up on."""
        frame["server_time"] = time.time()
        try:
            async with asyncio.timeout(self.hub.settings.ui_send_timeout):
                await self.websocket.send_text(orjson.dumps(frame).decode())
        except TimeoutError:
            log.warning("dashboard did not read for %.0f s; dropping it", self.hub.settings.ui_send_timeout)
            return False
        return True

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.websocket.close(code, reason)

    async def _read_until_closed(self) -> None:
        """The page sends nothing we need; reading is how a closed socket is noticed."""
        while (await self.websocket.receive())["type"] != "websocket.disconnect":
            pass
