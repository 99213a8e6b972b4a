"""Dashboard sessions: a signed, expiring cookie value, checked without any server-side lookup.

The value is ``<expires>.<nonce>.<signature>`` with an HMAC-SHA256 signature (stdlib ``hmac``:
one primitive, no extra dependency for ~30 lines). The signing key is derived from the session
secret *and* the API token, so rotating either logs every browser out. Logout also revokes the
cookie's nonce in memory, so a copied cookie dies with the logout rather than at its expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from monitor_server.settings import Settings
from monitor_server.token import kept_secret

COOKIE_NAME = "monitor_session"
SECRET_FILE = "session_secret"  # noqa: S105 - a file name, not a secret


class SessionSigner:
    def __init__(
        self, secret: bytes, token: str, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(secret, b"monitor-ui-session\0" + token.encode(), hashlib.sha256).digest()
        self.lifetime = lifetime
        self._clock = clock
        self._revoked: dict[str, float] = {}  # nonce -> expiry, pruned as they lapse

    def issue(self) -> str:
        expires = int(self._clock() + self.lifetime)
        body = f"{expires}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, value: str | None) -> bool:
        parsed = self._parse(value)
        return parsed is not None and parsed[1] not in self._revoked

    def revoke(self, value: str | None) -> None:
        parsed = self._parse(value)
        if parsed is not None:
            now = self._clock()
            self._revoked = {n: e for n, e in self._revoked.items() if e > now}
            self._revoked[parsed[1]] = parsed[0]

    def _parse(self, value: str | None) -> tuple[float, str] | None:
        """(expiry, nonce) of a correctly signed, unexpired value; None otherwise."""
        body, _, signature = (value or "").rpartition(".")
        expires, _, nonce = body.partition(".")
        if not (nonce and hmac.compare_digest(signature.encode(), self._sign(body).encode())):
            return None
        if not expires.isdigit() or int(expires) <= self._clock():
            return None
        return float(expires), nonce

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()


def session_secret(settings: Settings) -> bytes:
    """The configured secret, else the one kept in the data folder, else make and keep one."""
    if settings.session_secret is not None and settings.session_secret.get_secret_value():
        return settings.session_secret.get_secret_value().encode()
    value, _ = kept_secret(settings.token_dir / SECRET_FILE)
    return value.encode()
