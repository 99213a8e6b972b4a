"""The dashboard's session cookie: set after a login, cleared at logout.

The value is a random session secret (``msess_...``); the store keeps only its SHA-256 with the
user, expiry and a revoked flag (``identity.accounts``), so logout, a password change or a user's
removal ends it for good, across hub restarts. HttpOnly, SameSite=Strict, Path=/, and Secure
whenever the dashboard is reached over HTTPS.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from monitor_server.identity.accounts import Login
from monitor_server.identity.authn import SESSION_COOKIE
from monitor_server.settings import Settings

COOKIE_NAME = SESSION_COOKIE


def set_session_cookie(response: Response, conn: HTTPConnection, settings: Settings, login: Login) -> None:
    response.set_cookie(
        COOKIE_NAME,
        login.cookie,
        max_age=int(settings.session_lifetime),
        path="/",
        secure=over_tls(conn, settings),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, conn: HTTPConnection, settings: Settings) -> None:
    secure = over_tls(conn, settings)
    response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="strict")


def over_tls(conn: HTTPConnection, settings: Settings) -> bool:
    """Secure cookies over HTTPS, including behind a proxy known only from MONITOR_UI_ORIGINS."""
    return conn.url.scheme in ("https", "wss") or any(o.startswith("https://") for o in settings.ui_origins)
