"""Authentication: a request's credential becomes a ``Principal``, or ``None``.

Credentials are read from ``Authorization: Bearer`` or ``X-Auth-Token`` (device credentials,
API keys, the legacy fleet token) or from the session cookie (dashboard logins). Random
secrets are looked up by their SHA-256 digest; a small in-memory cache keeps the answer for
``cache_ttl`` seconds so the ingest path does not query the store per request. Every change
made through this hub (revocation, logout, password or role change, deletion) drops the cached
entries it affects at once; a change made by another hub on the same database is seen within
``cache_ttl``.

A session cookie alone authorizes reads. A write (any method but GET/HEAD/OPTIONS) by cookie
also needs the ``X-Monitor-UI: 1`` header and an allowed ``Origin``: a cross-site form cannot
set either, so this stops CSRF even where SameSite is not honoured.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import HTTPConnection

from monitor_server.auth import presented_token
from monitor_server.identity.principals import LEGACY, Principal, PrincipalKind
from monitor_server.identity.secrets import SecretKind, digest, kind_of, same
from monitor_server.store import Store
from monitor_server.ui.origins import origin_allowed
from protocol.identity import Role

SESSION_COOKIE = "monitor_session"
LEGACY_SESSION_USER = ""  # a session opened with the legacy token (the token login form, login links)
CSRF_HEADER = "x-monitor-ui"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Authenticator:
    """Turns presented secrets into principals; owns the cache that revocation invalidates."""

    def __init__(
        self,
        store: Store,
        legacy_token: str | None,
        ui_origins: list[str] | None = None,
        cache_ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.legacy_token = legacy_token  # None: MONITOR_LEGACY_TOKEN=off
        self.ui_origins = ui_origins or []
        self.cache_ttl = cache_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()  # digest -> (who, until)

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The principal of a request or WebSocket upgrade; None if it presents no valid credential."""
        token = presented_token(conn.headers)
        if token is not None:
            return await self.for_token(token)
        cookie = conn.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        principal = await self.for_session(cookie)
        if principal is None or conn.scope.get("method", "GET") in SAFE_METHODS:
            return principal
        return principal if self.cookie_write_allowed(conn) else None

    def cookie_write_allowed(self, conn: HTTPConnection) -> bool:
        return conn.headers.get(CSRF_HEADER) == "1" and origin_allowed(conn, self.ui_origins)

    async def for_token(self, token: str) -> Principal | None:
        """A header credential: the legacy token, a device credential or an API key."""
        if self.legacy_token is not None and same(token, self.legacy_token):
            return LEGACY
        kind = kind_of(token)
        if kind not in (SecretKind.DEVICE_CREDENTIAL, SecretKind.API_KEY):
            return None
        key = digest(token)
        if (cached := self._cached(key)) is not None:
            return cached
        if kind is SecretKind.DEVICE_CREDENTIAL:
            return self._keep(key, await self._device(key))
        return self._keep(key, *await self._api_key(key))

    async def for_session(self, cookie: str) -> Principal | None:
        """A session cookie's principal while the session is live (not expired, not revoked)."""
        if kind_of(cookie) is not SecretKind.SESSION:
            return None
        key = digest(cookie)
        if (cached := self._cached(key)) is not None:
            return cached
        session = await self.store.get_session(key)
        if session is None or session.revoked or session.expires_at <= time.time():
            return None
        until = self._clock() + min(self.cache_ttl, session.expires_at - time.time())
        if session.user == LEGACY_SESSION_USER:
            return self._keep(key, LEGACY if self.legacy_token is not None else None, until)
        user = await self.store.get_user(session.user)
        return self._keep(key, Principal.of_user(user.name, user.role) if user else None, until)

    async def _device(self, key: str) -> Principal | None:
        credential = await self.store.find_device_credential(key)
        if credential is None or credential.revoked:
            return None
        return Principal.device(credential.device_id)

    async def _api_key(self, key: str) -> tuple[Principal | None, float | None]:
        found = await self.store.find_api_key(key)
        now = time.time()
        if found is None or found.revoked or (found.expires_at is not None and found.expires_at <= now):
            return None, None
        owner = await self.store.get_user(found.owner)
        if owner is None:
            return None, None
        role = min(found.role, owner.role, key=lambda r: r.rank)  # never more than the owner has now
        principal = Principal(
            PrincipalKind.API_KEY,
            f"{found.owner}/{found.name}",
            Role(role),
            user=found.owner,
            key_id=found.id,
        )
        until = (
            None if found.expires_at is None else self._clock() + min(self.cache_ttl, found.expires_at - now)
        )
        return principal, until

    # The cache

    def _cached(self, key: str) -> Principal | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._cache[key]
            return None
        return entry[0]

    def _keep(self, key: str, principal: Principal | None, until: float | None = None) -> Principal | None:
        if principal is not None:
            self._cache[key] = (principal, self._clock() + self.cache_ttl if until is None else until)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal

    def forget(self, match: Callable[[Principal], bool]) -> None:
        """Drop every cached principal ``match`` selects (called on each revocation)."""
        for key in [k for k, (p, _) in self._cache.items() if match(p)]:
            del self._cache[key]

    def forget_digest(self, key: str) -> None:
        self._cache.pop(key, None)

    def forget_user(self, name: str) -> None:
        """Sessions and API keys acting for ``name``."""
        self.forget(lambda p: p.user == name)

    def forget_device(self, device_id: str) -> None:
        self.forget(lambda p: p.kind is PrincipalKind.DEVICE and p.device_id == device_id)

    def forget_key(self, key_id: str) -> None:
        self.forget(lambda p: p.key_id == key_id)
