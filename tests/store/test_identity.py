"""The identity half of the store (DESIGN §10), the same on SQLite and PostgreSQL (DESIGN §13)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor_server.identity import Identity
from monitor_server.identity.events import DeviceRevoked, IdentityEvent, SessionsEnded
from monitor_server.identity.principals import LEGACY, Principal, PrincipalKind
from monitor_server.identity.secrets import digest
from monitor_server.settings import Settings
from monitor_server.store.base import Store
from monitor_server.store.records import (
    ApiKey,
    AuditEvent,
    DeviceCredential,
    EnrollmentToken,
    User,
    UserSession,
)
from protocol.errors import Conflict, Forbidden, NotFound, Unauthenticated
from protocol.identity import Role

NOW = 1_800_000_000.25
HASH = "$argon2id$x"
LEGACY_TOKEN = "legacy-token-for-tests-123"


def user(name: str, role: Role = Role.VIEWER, password_hash: str = HASH) -> User:
    return User(name, password_hash, role, NOW, NOW)


def token(
    token_id: str,
    token_hash: str,
    max_uses: int = 1,
    expires_at: float = NOW + 60,
    tags: tuple[str, ...] = (),
) -> EnrollmentToken:
    return EnrollmentToken(token_id, token_hash, "ana", NOW, expires_at, max_uses, tags=tags)


async def uses(store: Store) -> dict[str, int]:
    return {t.id: t.uses for t in await store.list_enrollment_tokens()}


# users


async def test_users_round_trip_in_name_order(store: Store) -> None:
    """Users come back exactly as stored, listed by name bytewise (capitals first, as SQLite sorts)."""
    for name in ("bo", "ana", "Zed"):
        await store.create_user(user(name, Role.ADMIN))
    assert await store.get_user("ana") == user("ana", Role.ADMIN)
    assert [u.name for u in await store.list_users()] == ["Zed", "ana", "bo"]
    assert await store.get_user("nobody") is None


async def test_user_name_taken_is_conflict(store: Store) -> None:
    """A second user with a taken name is a Conflict and leaves the first unchanged."""
    await store.create_user(user("ana", Role.ADMIN))
    with pytest.raises(Conflict):
        await store.create_user(user("ana", Role.VIEWER, "$argon2id$other"))
    assert await store.get_user("ana") == user("ana", Role.ADMIN)


async def test_update_user_changes_only_what_is_given(store: Store) -> None:
    """A role change keeps the password hash and vice versa; changed_at moves; unknown is NotFound."""
    await store.create_user(user("ana", Role.ADMIN))
    changed = await store.update_user("ana", NOW + 1, role=Role.OPERATOR)
    assert changed == User("ana", "$argon2id$x", Role.OPERATOR, NOW, NOW + 1)
    changed = await store.update_user("ana", NOW + 2, password_hash="$argon2id$new")
    assert changed == User("ana", "$argon2id$new", Role.OPERATOR, NOW, NOW + 2)
    assert await store.get_user("ana") == changed
    with pytest.raises(NotFound):
        await store.update_user("nobody", NOW, role=Role.VIEWER)


async def test_delete_user_ends_sessions_and_revokes_keys(store: Store) -> None:
    """Deleting a user deletes their sessions and revokes their keys, and nobody else's."""
    for name in ("ana", "bo"):
        await store.create_user(user(name))
        await store.create_session(UserSession(f"s-{name}", name, NOW, NOW + 60))
        await store.create_api_key(ApiKey(f"k-{name}", name, "ci", Role.VIEWER, f"d-{name}", NOW))
    assert await store.delete_user("ana") is True
    assert await store.get_user("ana") is None and await store.get_session("s-ana") is None
    assert (await store.find_api_key("d-ana")) == ApiKey(
        "k-ana", "ana", "ci", Role.VIEWER, "d-ana", NOW, revoked=True
    )
    assert await store.get_session("s-bo") is not None
    assert [k.id for k in await store.list_api_keys()] == ["k-bo"]
    assert await store.delete_user("ana") is False


# sessions


async def test_sessions_revoke_one_or_all(store: Store) -> None:
    """Revoking one session leaves the others; revoking a user's sessions counts the live ones."""
    for key in ("a", "b", "c"):
        await store.create_session(UserSession(key, "bo", NOW, NOW + 60))
    await store.create_session(UserSession("d", "cy", NOW, NOW + 60))
    assert await store.revoke_session("a") is True
    assert await store.revoke_session("a") is False and await store.revoke_session("nope") is False
    assert await store.revoke_user_sessions("bo") == 2
    assert await store.revoke_user_sessions("bo") == 0
    assert [await store.get_session(k) for k in "abc"] == [
        UserSession(k, "bo", NOW, NOW + 60, True) for k in "abc"
    ]
    assert await store.get_session("d") == UserSession("d", "cy", NOW, NOW + 60)


async def test_ended_sessions_are_deleted_live_ones_kept(store: Store) -> None:
    """Revoked and expired sessions are deleted and counted; a live one (and one ending now) stays."""
    await store.create_session(UserSession("live", "cy", NOW, NOW + 60))
    await store.create_session(UserSession("edge", "cy", NOW - 60, NOW))
    await store.create_session(UserSession("old", "cy", NOW - 120, NOW - 60))
    await store.create_session(UserSession("out", "cy", NOW, NOW + 60))
    await store.revoke_session("out")
    assert await store.delete_ended_sessions(NOW) == 2
    assert await store.get_session("live") is not None and await store.get_session("edge") is not None
    assert await store.get_session("old") is None and await store.get_session("out") is None
    assert await store.delete_ended_sessions(NOW) == 0


# API keys


async def test_api_keys_found_listed_and_revoked(store: Store) -> None:
    """Keys are listed oldest first (per owner or all) until revoked; a revoked key is still found."""
    first = ApiKey("k2", "ana", "ci", Role.OPERATOR, "d1", NOW, NOW + 3600)
    second = ApiKey("k1", "bo", "cron", Role.VIEWER, "d2", NOW + 1)
    tied = ApiKey("k3", "ana", "tie", Role.VIEWER, "d3", NOW + 1)
    for key in (tied, second, first):
        await store.create_api_key(key)
    assert await store.find_api_key("d1") == first and await store.find_api_key("nope") is None
    assert await store.list_api_keys() == [first, second, tied]
    assert await store.list_api_keys("ana") == [first, tied] and await store.list_api_keys("cy") == []
    revoked = ApiKey("k2", "ana", "ci", Role.OPERATOR, "d1", NOW, NOW + 3600, revoked=True)
    assert await store.revoke_api_key("k2") == revoked
    assert await store.revoke_api_key("k2") is None and await store.revoke_api_key("nope") is None
    assert await store.list_api_keys("ana") == [tied] and await store.find_api_key("d1") == revoked


# enrollment tokens


async def test_enrollment_token_spends_uses_then_refuses(store: Store) -> None:
    """A token enrolls max_uses devices with its tags, then is Unauthenticated; its uses are counted."""
    await store.create_enrollment_token(token("t1", "th", 2, tags=("lab", "eu")))
    first = await store.enroll_device("th", "dev-a", "c1", NOW)
    assert first == DeviceCredential("dev-a", "c1", NOW, tags=("lab", "eu"), enrollment_token="t1")
    assert await store.get_device_credential("dev-a") == first
    await store.enroll_device("th", "dev-b", "c2", NOW)
    with pytest.raises(Unauthenticated):
        await store.enroll_device("th", "dev-c", "c3", NOW)
    used_up = EnrollmentToken("t1", "th", "ana", NOW, NOW + 60, 2, uses=2, tags=("lab", "eu"))
    assert await store.list_enrollment_tokens() == [used_up]
    assert await store.get_device_credential("dev-c") is None


async def test_enrollment_refuses_expired_revoked_and_unknown_tokens(store: Store) -> None:
    """An expired (at its expiry included), revoked or unknown token is Unauthenticated."""
    await store.create_enrollment_token(token("old", "h-old", 5, expires_at=NOW))
    await store.create_enrollment_token(token("gone", "h-gone", 5))
    assert await store.revoke_enrollment_token("gone") is True
    assert await store.revoke_enrollment_token("gone") is False
    assert await store.revoke_enrollment_token("nope") is False
    for token_hash in ("h-old", "h-gone", "h-nope"):
        with pytest.raises(Unauthenticated):
            await store.enroll_device(token_hash, "dev", "c", NOW)
    assert await uses(store) == {"old": 0}  # the revoked one is not listed
    assert await store.get_device_credential("dev") is None


async def test_enrollment_tokens_listed_oldest_first(store: Store) -> None:
    """Tokens not revoked are listed by creation time, then id, used-up and expired ones included."""
    late = EnrollmentToken("a", "h1", "ana", NOW + 5, NOW + 60, 1)
    early = EnrollmentToken("c", "h2", "bo", NOW, NOW - 1, 3, uses=3, tags=("x",))
    tied = EnrollmentToken("b", "h3", "bo", NOW, NOW + 60, 1)
    for t in (late, early, tied):
        await store.create_enrollment_token(t)
    assert await store.list_enrollment_tokens() == [tied, early, late]


async def test_enrolled_id_is_conflict_without_spending_a_use(store: Store) -> None:
    """An id holding a credential (live, then revoked) is a Conflict that spends no use."""
    await store.create_enrollment_token(token("t", "th", 5))
    await store.enroll_device("th", "dev", "c1", NOW)
    with pytest.raises(Conflict, match="live"):
        await store.enroll_device("th", "dev", "c2", NOW)
    revoked = await store.revoke_device_credential("dev", NOW)
    assert revoked == DeviceCredential("dev", "c1", NOW, revoked=True, enrollment_token="t")
    with pytest.raises(Conflict, match="revoked"):
        await store.enroll_device("th", "dev", "c2", NOW)
    assert await uses(store) == {"t": 1}
    assert await store.get_device_credential("dev") == revoked


async def test_reset_frees_the_id(store: Store) -> None:
    """After a reset the credential is gone and the same id enrolls again."""
    await store.create_enrollment_token(token("t", "th", 5))
    await store.enroll_device("th", "dev", "c1", NOW)
    await store.revoke_device_credential("dev", NOW)
    assert await store.reset_device_credential("dev") is True
    assert await store.reset_device_credential("dev") is False
    assert (
        await store.get_device_credential("dev") is None and await store.find_device_credential("c1") is None
    )
    again = await store.enroll_device("th", "dev", "c2", NOW + 1)
    assert again == DeviceCredential("dev", "c2", NOW + 1, enrollment_token="t")


async def test_concurrent_enrollments_spend_the_last_use_once(store: Store) -> None:
    """Two enrollments racing for a one-use token: exactly one succeeds, the other is Unauthenticated."""
    await store.create_enrollment_token(token("t", "th", 1))
    results = await asyncio.gather(
        store.enroll_device("th", "dev-a", "ca", NOW),
        store.enroll_device("th", "dev-b", "cb", NOW),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, DeviceCredential)]
    assert len(won) == 1 and [type(r) for r in results if r not in won] == [Unauthenticated]
    assert await uses(store) == {"t": 1}
    assert [await store.get_device_credential(d) for d in ("dev-a", "dev-b")].count(None) == 1


@pytest.mark.parametrize("second_token", ["th", "th2"], ids=["one-token", "two-tokens"])
async def test_concurrent_enrollments_of_one_id_store_one_credential(store: Store, second_token: str) -> None:
    """Two enrollments of one id racing (one token or two): one credential, one Conflict, one use spent."""
    await store.create_enrollment_token(token("t", "th", 5))
    await store.create_enrollment_token(token("t2", "th2", 5))
    results = await asyncio.gather(
        store.enroll_device("th", "dev", "ca", NOW),
        store.enroll_device(second_token, "dev", "cb", NOW),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, DeviceCredential)]
    assert len(won) == 1 and [type(r) for r in results if r not in won] == [Conflict]
    assert await store.get_device_credential("dev") == won[0]
    assert sum((await uses(store)).values()) == 1


# device credentials: rotation and revocation


async def enrolled(store: Store, device_id: str = "dev", credential: str = "old") -> DeviceCredential:
    await store.create_enrollment_token(token(f"t-{device_id}", f"th-{device_id}", 1, tags=("lab",)))
    return await store.enroll_device(f"th-{device_id}", device_id, credential, NOW)


async def test_rotation_keeps_both_until_confirmed(store: Store) -> None:
    """A staged credential works beside the live one; confirming retires the old digest."""
    live = await enrolled(store)
    staged = await store.stage_device_credential("dev", "new", NOW + 1)
    assert staged == DeviceCredential("dev", "old", NOW, "new", tags=("lab",), enrollment_token="t-dev")
    assert await store.find_device_credential("old") == staged == await store.find_device_credential("new")
    assert await store.get_device_credential("dev") == staged != live
    confirmed = await store.confirm_device_credential("dev", NOW + 2)
    assert confirmed == DeviceCredential(
        "dev", "new", NOW, None, NOW + 2, tags=("lab",), enrollment_token="t-dev"
    )
    assert await store.find_device_credential("old") is None
    assert await store.find_device_credential("new") == confirmed == await store.get_device_credential("dev")


async def test_rotation_refusals(store: Store) -> None:
    """Unknown device: NotFound; nothing pending or revoked: Conflict; restaging replaces the pending one."""
    with pytest.raises(NotFound):
        await store.stage_device_credential("nobody", "x", NOW)
    with pytest.raises(NotFound):
        await store.confirm_device_credential("nobody", NOW)
    await enrolled(store)
    with pytest.raises(Conflict):
        await store.confirm_device_credential("dev", NOW)
    await store.stage_device_credential("dev", "first", NOW)
    await store.stage_device_credential("dev", "second", NOW)
    assert await store.find_device_credential("first") is None
    await store.revoke_device_credential("dev", NOW)
    with pytest.raises(Conflict):
        await store.stage_device_credential("dev", "third", NOW)
    with pytest.raises(Conflict):
        await store.confirm_device_credential("dev", NOW)


async def test_revoking_drops_the_pending_credential(store: Store) -> None:
    """Revocation marks the credential revoked and forgets a pending one; unknown devices give None."""
    await enrolled(store)
    await store.stage_device_credential("dev", "new", NOW)
    revoked = await store.revoke_device_credential("dev", NOW + 1)
    assert revoked == DeviceCredential(
        "dev", "old", NOW, revoked=True, tags=("lab",), enrollment_token="t-dev"
    )
    assert await store.find_device_credential("new") is None
    assert await store.find_device_credential("old") == revoked  # found, as revoked: the caller refuses it
    assert await store.revoke_device_credential("nobody", NOW) is None


async def test_find_credential_prefers_a_live_digest(store: Store) -> None:
    """A digest live for one device and pending for another finds the device it is live for."""
    await enrolled(store, "dev-a", "shared")
    await enrolled(store, "dev-b", "b-live")
    await store.stage_device_credential("dev-b", "shared", NOW)
    found = await store.find_device_credential("shared")
    assert found is not None and found.device_id == "dev-a"


# audit log


async def test_audit_newest_first_since_and_limit(store: Store) -> None:
    """Events get rising ids and come back newest first, from since (inclusive) on, at most limit."""
    added = [
        await store.add_audit(
            AuditEvent(100.0 + i, "user", "ana", "login", "ana", "10.0.0.1", {"n": i, "z": [i]})
        )
        for i in range(4)
    ]
    assert [e.id for e in added] == [1, 2, 3, 4]
    assert await store.list_audit(None, 10) == added[::-1]
    assert await store.list_audit(101.0, 10) == added[:0:-1]
    assert await store.list_audit(None, 2) == added[:1:-1]
    assert await store.list_audit(104.0, 10) == []


async def test_audit_event_without_optional_fields(store: Store) -> None:
    """An event with no target, address or detail round-trips with None in each."""
    stored = await store.add_audit(AuditEvent(5.0, "legacy", "legacy-token", "user_created"))
    assert stored == AuditEvent(5.0, "legacy", "legacy-token", "user_created", id=stored.id)
    assert await store.list_audit(None, 1) == [stored]


# names no row can have


async def test_names_holding_nul_are_simply_unknown(store: Store) -> None:
    """A NUL in a name from a URL or a login finds nothing (PostgreSQL text cannot hold it) and is audited."""
    await store.create_user(user("ana"))
    assert await store.get_user("ana\x00") is None
    with pytest.raises(NotFound):
        await store.update_user("ana\x00", NOW, role=Role.ADMIN)
    assert await store.delete_user("ana\x00") is False and await store.revoke_user_sessions("ana\x00") == 0
    assert (
        await store.revoke_api_key("k\x00") is None and await store.revoke_enrollment_token("t\x00") is False
    )
    await store.add_audit(
        AuditEvent(1.0, "anonymous", "ana\x00", "login_failed", "ana\x00", None, {"s": "\x00"})
    )
    [event] = await store.list_audit(None, 10)
    assert event.action == "login_failed" and event.actor.startswith("ana") and event.detail == {"s": "\x00"}


async def test_identity_survives_reopening(store: Store) -> None:
    """Users, sessions, keys, tokens, credentials and the audit log are all there after a reopen."""
    await store.create_user(user("ana", Role.ADMIN))
    await store.create_session(UserSession("s", "ana", NOW, NOW + 60))
    await store.create_api_key(ApiKey("k", "ana", "ci", Role.VIEWER, "d", NOW))
    credential = await enrolled(store)
    event = await store.add_audit(AuditEvent(NOW, "user", "ana", "login"))
    before = (await store.list_users(), await store.list_api_keys(), await store.list_enrollment_tokens())
    await store.close()
    await store.open()
    assert (
        await store.list_users(),
        await store.list_api_keys(),
        await store.list_enrollment_tokens(),
    ) == before
    assert await store.get_session("s") == UserSession("s", "ana", NOW, NOW + 60)
    assert await store.find_device_credential("old") == credential
    assert await store.list_audit(None, 10) == [event]


# the identity services over each store


@pytest.fixture
def identity(store: Store, tmp_path: Path) -> Identity:
    """The identity services over ``store``, accepting the legacy token."""
    return Identity.build(store, Settings(db=tmp_path / "monitor.db"), LEGACY_TOKEN)


async def test_accounts_login_sessions_and_events(identity: Identity, store: Store) -> None:
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


async def test_legacy_token_off(store: Store, tmp_path: Path) -> None:
    """Without a legacy token the fleet token is nobody, and so is a session it opened."""
    off = Identity.build(store, Settings(db=tmp_path / "monitor.db"), None)
    assert await off.authn.for_token(LEGACY_TOKEN) is None
    on = Identity.build(store, Settings(db=tmp_path / "monitor.db"), LEGACY_TOKEN)
    assert await on.authn.for_token(LEGACY_TOKEN) == LEGACY
    login = await on.accounts.open_session("")
    assert await off.authn.for_session(login.cookie) is None
