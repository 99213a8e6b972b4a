"""The dashboard's state, built once per app: session signer, login codes and the cookie rules."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from monitor_server.hub import Hub
from monitor_server.settings import Settings
from monitor_server.ui.login_codes import LoginCodes
from monitor_server.ui.origins import origin_allowed
from monitor_server.ui.session import COOKIE_NAME, SessionSigner, session_secret

# The page sends this on every REST call. A cross-site form or a no-CORS fetch cannot set a
# custom header, so with the Origin check it stops CSRF even where SameSite is not honoured.
CSRF_HEADER = "x-monitor-ui"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Dashboard:
    settings: Settings
    signer: SessionSigner
    codes: LoginCodes

    @classmethod
    def build(cls, hub: Hub) -> Dashboard:
        s = hub.settings
        signer = SessionSigner(session_secret(s), hub.token.value, s.session_lifetime)
        return cls(settings=s, signer=signer, codes=LoginCodes(s.login_code_ttl))

    def has_session(self, conn: HTTPConnection) -> bool:
        return self.signer.valid(conn.cookies.get(COOKIE_NAME))

    def origin_ok(self, conn: HTTPConnection) -> bool:
        return origin_allowed(conn, self.settings.ui_origins)

    def authenticate(self, conn: HTTPConnection) -> bool:
        """The REST API's cookie check: reads need a session; writes also the header and Origin."""
        if not self.has_session(conn):
            return False
        if conn.scope.get("method", "GET") in SAFE_METHODS:
            return True
        return conn.headers.get(CSRF_HEADER) == "1" and self.origin_ok(conn)

    def login_link(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/ui/login?otp={self.codes.issue()}"


def dashboard_of(conn: HTTPConnection) -> Dashboard:
    dashboard: Dashboard = conn.app.state.dashboard
    return dashboard
