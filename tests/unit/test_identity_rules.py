"""Identity rules without I/O: role order, secret formats, who may call what, the per-name throttle."""

from __future__ import annotations

import pytest

from monitor_server.identity.accounts import NameThrottle
from monitor_server.identity.authz import own_device, refused
from monitor_server.identity.passwords import hash_password, verify_password
from monitor_server.identity.principals import LEGACY, Principal, Role
from monitor_server.identity.secrets import SecretKind, digest, kind_of, new_secret, same
from monitor_server.throttle import Throttle
from protocol.errors import Forbidden


def test_role_order() -> None:
    """admin > operator > viewer, each at least itself."""
    assert Role.ADMIN.at_least(Role.OPERATOR) and Role.OPERATOR.at_least(Role.VIEWER)
    assert Role.VIEWER.at_least(Role.VIEWER) and not Role.VIEWER.at_least(Role.OPERATOR)


@pytest.mark.parametrize("kind", list(SecretKind))
def test_secrets_are_long_prefixed_and_hashed(kind: SecretKind) -> None:
    """Each secret carries its kind's prefix and 256 random bits; only its SHA-256 is kept."""
    secret = new_secret(kind)
    assert kind_of(secret) is kind and len(secret) - len(kind.value) >= 43  # base64 of 32 bytes
    assert secret != new_secret(kind) and len(digest(secret)) == 64 and secret not in digest(secret)
    assert same(secret, secret) and not same(secret, secret + "x")


async def test_password_hash_is_argon2id_and_verifies() -> None:
    """Argon2id hashes verify the right password only; an unknown user (None) never verifies."""
    stored = await hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "correct horse")
    assert not await verify_password(stored, "wrong horse")
    assert not await verify_password(None, "correct horse")


def test_device_may_use_only_its_own_routes() -> None:
    """A device passes device routes for its own id only; never the others, whatever their role."""
    dev = Principal.device("a")
    assert refused(dev, Role.OPERATOR, True, "a") is None
    assert refused(dev, Role.OPERATOR, True, "b") is not None
    assert refused(dev, Role.VIEWER, False, None) is not None
    own_device(dev, "a")
    with pytest.raises(Forbidden):
        own_device(dev, "b")


def test_roles_gate_routes() -> None:
    """A viewer reads but cannot enqueue; an operator can; the legacy token is admin."""
    viewer, operator = Principal.of_user("v", Role.VIEWER), Principal.of_user("o", Role.OPERATOR)
    assert refused(viewer, Role.VIEWER, False, None) is None
    assert refused(viewer, Role.OPERATOR, False, None) is not None
    assert refused(operator, Role.OPERATOR, True, "any") is None
    assert refused(operator, Role.ADMIN, False, None) is not None
    assert refused(LEGACY, Role.ADMIN, False, None) is None


def test_name_throttle_spares_known_addresses() -> None:
    """Failures lock a name out, except from an address that logged in as it before."""
    now = [0.0]
    names = NameThrottle(Throttle(3, 60.0, 15.0, clock=lambda: now[0]))
    names.succeeded("ana", "10.0.0.1")
    for _ in range(3):
        names.failed("ana")
    assert names.retry_after("ana", "10.9.9.9") > 0
    assert names.retry_after("ana", "10.0.0.1") == 0
    now[0] = 16.0
    assert names.retry_after("ana", "10.9.9.9") == 0  # a short lockout
