"""The identity services over a real SQLite file (the store's own tests: tests/store/test_identity.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor_server.identity import Identity
from monitor_server.identity.events import DeviceRevoked, IdentityEvent, SessionsEnded
from monitor_server.identity.principals import LEGACY, Principal, PrincipalKind, Role
from monitor_server.identity.secrets import digest
from monitor_server.settings import Settings
from monitor_server.store import SQLiteStore
from protocol.errors import Conflict, Forbidden, Unauthenticated

LEGACY_TOKEN = "legacy-token-for-tests-123"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store in tmp_path."""
    opened = SQLiteStore(tmp_path / "monitor.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def identity(store: SQLiteStore, tmp_path: Path) -> Identity:
    """The identity services over ``store``, accepting the legacy token."""
    return Identity.build(store, Settings(db=tmp_path / "monitor.db"), LEGACY_TOKEN)


async def test_accounts_login_sessions_and_events(identity: Identity, store: SQLiteStore) -> None:
    """Login opens a stored session; a password change ends it, announces it, and is audited."""
    seen: list[IdentityEvent] = []
    identity.listeners.add(seen.append)
    admin = await identity.accounts.create_user(LEGACY, "ana", "correct horse", Role.ADMIN)
    assert admin.password_hash.startswith("$argon2id$") and "correct horse" not in admin.password_hash
    with pytest.raises(Unauthenticated):
        await identity.accounts.login("ana", "wrong password", "10.0.0.9")
    login = await identity.accounts.login("ana", "correct horse", "10.0.0.9")
    assert login.cookie.startswith("msess_") and await store.get_session(digest(login.cookie)) is not None
    assert await identity.authn.for_session(login.cookie) == Principal.of_user("ana", Role.ADMIN)
    await identity.accounts.update_user(LEGACY, "ana", password="battery staple")
    assert await identity.authn.for_session(login.cookie) is None
    assert SessionsEnded("ana") in seen
    actions = [(e.action, e.actor_kind, e.actor) for e in await identity.audit.recent()]
    assert actions[-3:] == [
        ("login", "user", "ana"),
        ("login_failed", "anonymous", "ana"),
        ("user_created", "legacy", "legacy-token"),
    ]


async def test_last_admin_cannot_be_removed(identity: Identity) -> None:
    """Deleting or demoting the only admin is a Conflict (nobody could manage the hub)."""
    await identity.accounts.create_user(LEGACY, "ana", "correct horse", Role.ADMIN)
    with pytest.raises(Conflict):
        await identity.accounts.delete_user(LEGACY, "ana")
    with pytest.raises(Conflict):
        await identity.accounts.update_user(LEGACY, "ana", role=Role.VIEWER)


async def test_api_key_role_capped_and_follows_owner(identity: Identity) -> None:
    """A key's role is at most its owner's, now and after the owner is demoted; revoked, it is refused."""
    await identity.accounts.create_user(LEGACY, "root", "correct horse", Role.ADMIN)
    await identity.accounts.create_user(LEGACY, "op", "correct horse", Role.OPERATOR)
    with pytest.raises(Forbidden):
        await identity.accounts.create_api_key(LEGACY, "k", Role.ADMIN, owner="op")
    with pytest.raises(Forbidden):
        await identity.accounts.create_api_key(LEGACY, "k", Role.VIEWER)  # the legacy token owns no key
    key, secret = await identity.accounts.create_api_key(LEGACY, "ci", Role.OPERATOR, owner="op")
    assert secret.startswith("mak_") and key.key_hash == digest(secret)
    principal = await identity.authn.for_token(secret)
    assert (
        principal is not None and principal.kind is PrincipalKind.API_KEY and principal.role is Role.OPERATOR
    )
    await identity.accounts.update_user(LEGACY, "op", role=Role.VIEWER)
    assert (await identity.authn.for_token(secret)).role is Role.VIEWER  # type: ignore[union-attr]
    await identity.accounts.delete_api_key(LEGACY, key.id)
    assert await identity.authn.for_token(secret) is None


async def test_device_credential_revoke_reset_and_rotation(identity: Identity) -> None:
    """Enrollment issues a device principal; revocation drops it at once and is announced; rotation swaps."""
    seen: list[IdentityEvent] = []
    identity.listeners.add(seen.append)
    _, token = await identity.enrollment.create_token(LEGACY, expires_in=60, max_uses=2)
    _, credential = await identity.enrollment.enroll(token, "dev-a", "host-a")
    assert await identity.authn.for_token(credential) == Principal.device("dev-a")
    new = await identity.enrollment.begin_rotation("dev-a")
    assert await identity.authn.for_token(new) == Principal.device("dev-a")
    await identity.enrollment.confirm_rotation("dev-a")
    assert await identity.authn.for_token(credential) is None
    await identity.enrollment.revoke(LEGACY, "dev-a")
    assert await identity.authn.for_token(new) is None and DeviceRevoked("dev-a") in seen
    with pytest.raises(Conflict):
        await identity.enrollment.enroll(token, "dev-a")
    await identity.enrollment.reset(LEGACY, "dev-a")
    _, again = await identity.enrollment.enroll(token, "dev-a")
    assert await identity.authn.for_token(again) == Principal.device("dev-a")


async def test_legacy_token_off(store: SQLiteStore, tmp_path: Path) -> None:
    """Without a legacy token the fleet token is nobody, and so is a session it opened."""
    off = Identity.build(store, Settings(db=tmp_path / "monitor.db"), None)
    assert await off.authn.for_token(LEGACY_TOKEN) is None
    on = Identity.build(store, Settings(db=tmp_path / "monitor.db"), LEGACY_TOKEN)
    assert await on.authn.for_token(LEGACY_TOKEN) == LEGACY
    login = await on.accounts.open_session("")
    assert await off.authn.for_session(login.cookie) is None
