"""Users, their dashboard sessions and their API keys: create, change, remove, log in and out.

Each change is audited and drops what the authentication cache holds for it; ending a user's
sessions is announced (``SessionsEnded``) so their dashboard sockets close at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from monitor_server.identity.audit import CLI, Audit, AuditAction
from monitor_server.identity.authn import Authenticator
from monitor_server.identity.events import CredentialsChanged, IdentityListeners, SessionsEnded
from monitor_server.identity.passwords import hash_password, verify_password
from monitor_server.identity.principals import Principal
from monitor_server.identity.secrets import SecretKind, digest, kind_of, new_id, new_secret
from monitor_server.store import Store
from monitor_server.store.records import ApiKey, User, UserSession
from monitor_server.throttle import Throttle
from protocol.errors import Conflict, Forbidden, NotFound, Unauthenticated
from protocol.identity import Role


class LoginThrottled(Unauthenticated):
    """Too many wrong passwords for this name (or from this address): wait ``retry_after`` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {max(1, round(retry_after))} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Login:
    """A new session: ``cookie`` is its secret (set once as the cookie, never stored or logged)."""

    principal: Principal
    cookie: str
    expires_at: float


class NameThrottle:
    """Failed logins per user name, with a short lockout that spares addresses known to be right.

    Counting per name stops a botnet spreading guesses for one account over many addresses. So
    that an attacker cannot keep the real user out, the lockout is short, and an address that
    logged in as that name before (remembered, bounded) is not subject to it.
    """

    def __init__(self, throttle: Throttle, max_known: int = 10_000) -> None:
        self.throttle = throttle
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_known = max_known

    def retry_after(self, name: str, address: str) -> float:
        return 0.0 if (name, address) in self._known else self.throttle.retry_after(name)

    def failed(self, name: str) -> None:
        self.throttle.failed(name)

    def succeeded(self, name: str, address: str) -> None:
        self._known[(name, address)] = None
        self._known.move_to_end((name, address))
        while len(self._known) > self._max_known:
            self._known.popitem(last=False)


class Accounts:
    def __init__(
        self,
        store: Store,
        authn: Authenticator,
        audit: Audit,
        listeners: IdentityListeners,
        session_lifetime: float,
        names: NameThrottle,
    ) -> None:
        self.store = store
        self.authn = authn
        self.audit = audit
        self.listeners = listeners
        self.session_lifetime = session_lifetime
        self.names = names

    # Users

    async def list_users(self) -> list[User]:
        return await self.store.list_users()

    async def create_user(
        self, actor: Principal | str, name: str, password: str, role: Role, address: str | None = None
    ) -> User:
        """Conflict if the name is taken. ``actor``: a principal, or the OS user of the CLI."""
        now = time.time()
        user = User(name, await hash_password(password), role, now, now)
        await self.store.create_user(user)
        await self.audit.record(AuditAction.USER_CREATED, actor, name, address, {"role": role.value}, CLI)
        return user

    async def update_user(
        self,
        actor: Principal | str,
        name: str,
        password: str | None = None,
        role: Role | None = None,
        address: str | None = None,
    ) -> User:
        """New password and/or role; a new password ends the user's sessions. NotFound, Conflict."""
        if role is not None and role is not Role.ADMIN:
            await self._keep_an_admin(name)
        hashed = await hash_password(password) if password is not None else None
        user = await self.store.update_user(name, time.time(), hashed, role)
        self.authn.forget_user(name)  # a new role applies to cached sessions and keys at once
        self.listeners.emit(CredentialsChanged(user=name))  # ...on every hub (DESIGN §13)
        if password is not None:
            await self._end_sessions(name)
        changed = [field for field, value in (("password", password), ("role", role)) if value is not None]
        detail: dict[str, object] = {"changed": changed, **({"role": role.value} if role else {})}
        await self.audit.record(AuditAction.USER_UPDATED, actor, name, address, detail, CLI)
        return user

    async def delete_user(self, actor: Principal, name: str, address: str | None = None) -> None:
        """Remove the user, their sessions (closing their sockets) and their API keys."""
        await self._keep_an_admin(name)
        if not await self.store.delete_user(name):
            raise NotFound(f"unknown user {name!r}")
        self.authn.forget_user(name)
        self.listeners.emit(SessionsEnded(name))
        await self.audit.record(AuditAction.USER_DELETED, actor, name, address)

    async def _keep_an_admin(self, name: str) -> None:
        """Conflict if ``name`` is the last admin (removing or demoting them would lock everyone out)."""
        admins = [u.name for u in await self.store.list_users() if u.role is Role.ADMIN]
        if admins == [name]:
            raise Conflict(f"{name!r} is the only admin; make another user admin first")

    async def _end_sessions(self, name: str) -> None:
        await self.store.revoke_user_sessions(name)
        self.authn.forget_user(name)
        self.listeners.emit(SessionsEnded(name))

    # Sessions

    async def login(self, name: str, password: str, address: str) -> Login:
        """Check the password (off the loop) and open a session; Unauthenticated or LoginThrottled."""
        if wait := self.names.retry_after(name, address):
            raise LoginThrottled(wait)
        user = await self.store.get_user(name)
        if not await verify_password(user.password_hash if user else None, password) or user is None:
            self.names.failed(name)
            await self.audit.record(AuditAction.LOGIN_FAILED, name, name, address)
            raise Unauthenticated("wrong user name or password")
        self.names.succeeded(name, address)
        login = await self.open_session(user.name)
        await self.audit.record(AuditAction.LOGIN, login.principal, name, address)
        return login

    async def open_session(self, user: str) -> Login:
        """A session for ``user`` (``LEGACY_SESSION_USER``: one opened with the legacy token)."""
        cookie = new_secret(SecretKind.SESSION)
        now = time.time()
        session = UserSession(digest(cookie), user, now, now + self.session_lifetime)
        await self.store.create_session(session)
        principal = await self.authn.for_session(cookie)
        if principal is None:  # the user was deleted meanwhile, or the legacy token is off
            raise Unauthenticated("this account cannot log in")
        return Login(principal, cookie, session.expires_at)

    async def logout(self, cookie: str | None, address: str | None = None) -> None:
        """End the session this cookie names (a missing or unknown cookie: nothing to do)."""
        if not cookie or kind_of(cookie) is not SecretKind.SESSION:
            return
        key = digest(cookie)
        principal = await self.authn.for_session(cookie)
        if await self.store.revoke_session(key):
            self.authn.forget_digest(key)
            self.listeners.emit(SessionsEnded(principal.user if principal else None, key))
            if principal is not None:
                await self.audit.record(AuditAction.LOGOUT, principal, principal.name, address)

    # API keys

    async def list_api_keys(self, owner: str | None = None) -> list[ApiKey]:
        return await self.store.list_api_keys(owner)

    async def create_api_key(
        self,
        actor: Principal,
        name: str,
        role: Role,
        expires_in: float | None = None,
        owner: str | None = None,
        address: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A key for ``owner`` (default: the actor's user) and its secret, shown only now.

        Forbidden if the role is above the owner's (or the actor's); NotFound for an unknown owner.
        """
        owner = owner or actor.user
        if owner is None:
            raise Forbidden('an API key belongs to a user: name one as "owner" (the legacy token has none)')
        user = await self.store.get_user(owner)
        if user is None:
            raise NotFound(f"unknown user {owner!r}")
        for limit, whose in ((user.role, f"user {owner!r}"), (actor.role, "yours")):
            if limit is None or not limit.at_least(role):
                raise Forbidden(f"role {role.value!r} is above {whose} ({limit}): a key gets at most that")
        secret = new_secret(SecretKind.API_KEY)
        now = time.time()
        expires = now + expires_in if expires_in is not None else None
        key = ApiKey(new_id(), owner, name, role, digest(secret), now, expires)
        await self.store.create_api_key(key)
        detail = {"name": name, "role": role.value, "owner": owner}
        await self.audit.record(AuditAction.API_KEY_CREATED, actor, key.id, address, detail)
        return key, secret

    async def delete_api_key(self, actor: Principal, key_id: str, address: str | None = None) -> ApiKey:
        revoked = await self.store.revoke_api_key(key_id)
        if revoked is None:
            raise NotFound(f"unknown API key {key_id!r}")
        self.authn.forget_key(key_id)
        self.listeners.emit(CredentialsChanged(key_id=key_id))
        detail = {"name": revoked.name, "owner": revoked.owner}
        await self.audit.record(AuditAction.API_KEY_DELETED, actor, key_id, address, detail)
        return revoked
