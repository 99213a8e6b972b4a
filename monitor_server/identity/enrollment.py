"""Devices: enrollment tokens, enrolling (token -> per-device credential), revoke, reset, rotation.

A device credential is issued once, at ``enroll``, and only its digest is kept. It stays live
until an admin revokes it; a revoked device cannot enroll again (409) until it is reset, which
forgets the credential. Rotation is two steps so the agent is never locked out: ``begin_rotation``
keeps a new credential beside the old one (both work), ``confirm_rotation`` (after the agent
said it stored the new one) retires the old.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from monitor_server.identity.audit import CLI, Audit, AuditAction
from monitor_server.identity.authn import Authenticator
from monitor_server.identity.events import DeviceRevoked, IdentityListeners
from monitor_server.identity.principals import Principal
from monitor_server.identity.secrets import SecretKind, digest, new_id, new_secret
from monitor_server.store import Store
from monitor_server.store.records import DeviceCredential, EnrollmentToken
from protocol.errors import NotFound, Unauthenticated


class Enrollment:
    def __init__(
        self, store: Store, authn: Authenticator, audit: Audit, listeners: IdentityListeners
    ) -> None:
        self.store = store
        self.authn = authn
        self.audit = audit
        self.listeners = listeners

    # Enrollment tokens

    async def create_token(
        self,
        actor: Principal | str,
        expires_in: float,
        max_uses: int = 1,
        tags: Sequence[str] = (),
        address: str | None = None,
    ) -> tuple[EnrollmentToken, str]:
        """A token and its secret (shown only now). ``actor`` is a principal, or a name (the CLI)."""
        secret = new_secret(SecretKind.ENROLLMENT_TOKEN)
        now = time.time()
        created_by = actor.name if isinstance(actor, Principal) else actor
        token = EnrollmentToken(
            new_id(), digest(secret), created_by, now, now + expires_in, max_uses, 0, tuple(tags)
        )
        await self.store.create_enrollment_token(token)
        detail = {"max_uses": max_uses, "expires_in": expires_in, "tags": list(tags)}
        await self.audit.record(AuditAction.ENROLLMENT_TOKEN_CREATED, actor, token.id, address, detail, CLI)
        return token, secret

    async def list_tokens(self) -> list[EnrollmentToken]:
        return await self.store.list_enrollment_tokens()

    async def delete_token(self, actor: Principal, token_id: str, address: str | None = None) -> None:
        if not await self.store.revoke_enrollment_token(token_id):
            raise NotFound(f"unknown enrollment token {token_id!r}")
        await self.audit.record(AuditAction.ENROLLMENT_TOKEN_DELETED, actor, token_id, address)

    # Device credentials

    async def enroll(
        self, token: str, device_id: str, hostname: str | None = None, address: str | None = None
    ) -> tuple[DeviceCredential, str]:
        """Spend one use of ``token`` for a new credential (returned once). Unauthenticated, Conflict."""
        if not token.startswith(SecretKind.ENROLLMENT_TOKEN.value):
            raise Unauthenticated("enrollment token unknown, expired, revoked or used up")
        secret = new_secret(SecretKind.DEVICE_CREDENTIAL)
        credential = await self.store.enroll_device(digest(token), device_id, digest(secret), time.time())
        detail = {"enrollment_token": credential.enrollment_token, "hostname": hostname}
        await self.audit.record(AuditAction.CREDENTIAL_ISSUED, device_id, device_id, address, detail)
        return credential, secret

    async def credential(self, device_id: str) -> DeviceCredential | None:
        return await self.store.get_device_credential(device_id)

    async def revoke(self, actor: Principal, device_id: str, address: str | None = None) -> DeviceCredential:
        """The credential stops working now; the live socket is told (``DeviceRevoked``). NotFound."""
        revoked = await self.store.revoke_device_credential(device_id, time.time())
        if revoked is None:
            raise NotFound(f"device {device_id!r} has no credential")
        self.authn.forget_device(device_id)
        self.listeners.emit(DeviceRevoked(device_id))
        await self.audit.record(AuditAction.CREDENTIAL_REVOKED, actor, device_id, address)
        return revoked

    async def reset(self, actor: Principal, device_id: str, address: str | None = None) -> bool:
        """Forget the device's credential (so it may enroll again); False if it had none."""
        forgotten = await self.store.reset_device_credential(device_id)
        self.authn.forget_device(device_id)
        if forgotten:
            self.listeners.emit(DeviceRevoked(device_id, reset=True))
        await self.audit.record(
            AuditAction.DEVICE_RESET, actor, device_id, address, {"had_credential": forgotten}
        )
        return forgotten

    async def begin_rotation(self, device_id: str) -> str:
        """Rotation step 1: a new credential kept beside the live one; returns its secret.

        Send it to the agent; call ``confirm_rotation`` when the agent says it stored it.
        Calling again replaces a pending one. NotFound without a credential, Conflict if revoked.
        """
        secret = new_secret(SecretKind.DEVICE_CREDENTIAL)
        await self.store.stage_device_credential(device_id, digest(secret), time.time())
        return secret

    async def confirm_rotation(
        self, device_id: str, actor: Principal | str | None = None, address: str | None = None
    ) -> DeviceCredential:
        """Rotation step 2: the pending credential becomes the only one. Conflict if none pending."""
        rotated = await self.store.confirm_device_credential(device_id, time.time())
        self.authn.forget_device(device_id)
        await self.audit.record(AuditAction.CREDENTIAL_ROTATED, actor or device_id, device_id, address)
        return rotated
