"""Which web origins may drive the dashboard: the hub's own, or the configured list.

Checked on ``/ws/ui`` (browsers do not apply the same-origin policy to WebSockets, so any page
could otherwise open one with the user's cookie) and on cookie-authenticated writes.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def own_origin(conn: HTTPConnection) -> str | None:
    """``scheme://host[:port]`` as the browser addressed this hub."""
    host = conn.headers.get("host")
    if not host:
        return None
    return f"{_HTTP_SCHEME.get(conn.url.scheme, 'http')}://{host.lower()}"


def origin_allowed(conn: HTTPConnection, allowed: list[str]) -> bool:
    """True when the request's ``Origin`` is in ``allowed`` (or, if that is empty, is our own)."""
    origin = conn.headers.get("origin")
    if not origin or origin == "null":
        return False
    origin = origin.lower().rstrip("/")
    if allowed:
        return origin in (a.lower() for a in allowed)
    return origin == own_origin(conn)
