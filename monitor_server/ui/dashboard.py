"""The dashboard's state, built once per app: login codes and the cookie rules."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from monitor_server.hub import Hub
from monitor_server.identity.principals import Principal
from monitor_server.settings import Settings
from monitor_server.ui.login_codes import LoginCodes
from monitor_server.ui.origins import origin_allowed
from monitor_server.ui.session import COOKIE_NAME


@dataclass
class Dashboard:
    settings: Settings
    hub: Hub
    codes: LoginCodes

    @classmethod
    def build(cls, hub: Hub) -> Dashboard:
        return cls(settings=hub.settings, hub=hub, codes=LoginCodes(hub.settings.login_code_ttl))

    async def principal(self, conn: HTTPConnection) -> Principal | None:
        """Who the session cookie belongs to while the session is live; None otherwise."""
        cookie = conn.cookies.get(COOKIE_NAME)
        return await self.hub.identity.authn.for_session(cookie) if cookie else None

    def origin_ok(self, conn: HTTPConnection) -> bool:
        return origin_allowed(conn, self.settings.ui_origins)

    def login_link(self, base_url: str, user: str = "") -> str:
        """A one-time link that logs in as ``user`` (default: with the legacy token's rights)."""
        return f"{base_url.rstrip('/')}/ui/login?otp={self.codes.issue(user)}"


def dashboard_of(conn: HTTPConnection) -> Dashboard:
    dashboard: Dashboard = conn.app.state.dashboard
    return dashboard
