"""The identity tables of the SQLite store, and the identity services over them, on a real file."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor_server.identity import Identity
from monitor_server.identity.events import DeviceRevoked, IdentityEvent, SessionsEnded
from monitor_server.identity.principals import LEGACY, Principal, PrincipalKind, Role
from monitor_server.identity.secrets import digest
from monitor_server.settings import Settings
from monitor_server.store import SQLiteStore
from monitor_server.store.records import ApiKey, AuditEvent, EnrollmentToken, User, UserSession
from protocol.errors import Conflict, Forbidden, NotFound, Unauthenticated

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


async def test_users_round_trip_and_reopen(store: SQLiteStore, tmp_path: Path) -> None:
    """A user is stored, changed, listed, survives reopening the file, and is deleted with its sessions."""
    now = time.time()
    await store.create_user(User("ana", "$argon2id$x", Role.ADMIN, now, now))
    with pytest.raises(Conflict):
        await store.create_user(User("ana", "$argon2id$y", Role.VIEWER, now, now))
    await store.create_session(UserSession("h1", "ana", now, now + 60))
    changed = await store.update_user("ana", now + 1, role=Role.OPERATOR)
    assert changed.role is Role.OPERATOR and changed.password_hash == "$argon2id$x"
    await store.close()
    await store.open()
    assert [u.name for u in await store.list_users()] == ["ana"]
    assert await store.get_session("h1") == UserSession("h1", "ana", now, now + 60)
    assert await store.delete_user("ana") and await store.get_session("h1") is None
    with pytest.raises(NotFound):
        await store.update_user("ana", now, role=Role.VIEWER)


async def test_sessions_revoke_one_or_all(store: SQLiteStore) -> None:
    """Revoking one session leaves the others; revoking a user's sessions reports how many were live."""
    now = time.time()
    for key in ("a", "b", "c"):
        await store.create_session(UserSession(key, "bo", now, now + 60))
    assert await store.revoke_session("a") and not await store.revoke_session("a")
    assert await store.revoke_user_sessions("bo") == 2
    sessions = [await store.get_session(k) for k in "abc"]
    assert all(s is not None and s.revoked for s in sessions)


async def test_ended_sessions_are_deleted_live_ones_kept(store: SQLiteStore) -> None:
    """Revoked and expired sessions are deleted; a live one stays."""
    now = time.time()
    await store.create_session(UserSession("live", "cy", now, now + 60))
    await store.create_session(UserSession("old", "cy", now - 120, now - 60))
    await store.create_session(UserSession("out", "cy", now, now + 60))
    await store.revoke_session("out")
    assert await store.delete_ended_sessions(now) == 2
    assert await store.get_session("live") is not None
    assert await store.get_session("old") is None and await store.get_session("out") is None


async def test_api_keys_listed_until_revoked(store: SQLiteStore) -> None:
    """A key is found by its digest; revoked, it leaves the list but is still found (as revoked)."""
    key = ApiKey("k1", "ana", "ci", Role.VIEWER, "d1", time.time(), None)
    await store.create_api_key(key)
    assert await store.find_api_key("d1") == key and await store.list_api_keys("ana") == [key]
    assert await store.revoke_api_key("k1") is not None and await store.revoke_api_key("k1") is None
    assert await store.list_api_keys() == [] and (await store.find_api_key("d1")).revoked  # type: ignore[union-attr]


async def test_enrollment_uses_expiry_conflict_and_reset(store: SQLiteStore) -> None:
    """A token enrolls max_uses devices, then 401; an enrolled id is 409 (revoked too) until reset."""
    now = time.time()
    await store.create_enrollment_token(EnrollmentToken("t1", "th", "ana", now, now + 60, 2, 0, ("lab",)))
    await store.create_enrollment_token(EnrollmentToken("t2", "old", "ana", now - 120, now - 60, 5))
    first = await store.enroll_device("th", "dev-a", "c1", now)
    assert first.tags == ("lab",) and first.enrollment_token == "t1"
    with pytest.raises(Conflict):
        await store.enroll_device("th", "dev-a", "c2", now)
    await store.enroll_device("th", "dev-b", "c3", now)
    with pytest.raises(Unauthenticated):
        await store.enroll_device("th", "dev-c", "c4", now)  # used up
    with pytest.raises(Unauthenticated):
        await store.enroll_device("old", "dev-c", "c4", now)  # expired
    assert {t.id: t.uses for t in await store.list_enrollment_tokens()} == {"t1": 2, "t2": 0}
    assert (await store.revoke_device_credential("dev-a", now)).revoked  # type: ignore[union-attr]
    await store.create_enrollment_token(EnrollmentToken("t3", "fresh", "ana", now, now + 60, 5))
    with pytest.raises(Conflict):
        await store.enroll_device("fresh", "dev-a", "c5", now)
    assert await store.reset_device_credential("dev-a")
    assert (await store.enroll_device("fresh", "dev-a", "c5", now)).credential_hash == "c5"


async def test_rotation_keeps_both_until_confirmed(store: SQLiteStore) -> None:
    """A staged credential is found beside the live one; confirming retires the old digest."""
    now = time.time()
    await store.create_enrollment_token(EnrollmentToken("t", "th", "ana", now, now + 60, 1))
    await store.enroll_device("th", "dev", "old", now)
    with pytest.raises(Conflict):
        await store.confirm_device_credential("dev", now)  # nothing pending
    await store.stage_device_credential("dev", "new", now)
    assert (await store.find_device_credential("old")) is not None
    assert (await store.find_device_credential("new")) is not None
    confirmed = await store.confirm_device_credential("dev", now + 1)
    assert confirmed.credential_hash == "new" and confirmed.rotated_at == now + 1
    assert await store.find_device_credential("old") is None
    with pytest.raises(NotFound):
        await store.stage_device_credential("nobody", "x", now)


async def test_audit_newest_first_since(store: SQLiteStore) -> None:
    """Audit events come back newest first, from ``since`` on, with their detail."""
    for i in range(3):
        await store.add_audit(AuditEvent(100.0 + i, "user", "ana", "login", "ana", "10.0.0.1", {"n": i}))
    events = await store.list_audit(since=101.0, limit=10)
    assert [e.detail for e in events] == [{"n": 2}, {"n": 1}] and events[0].id == 3


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
