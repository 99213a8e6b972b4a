"""The store interface: every backend (SQLite by default, PostgreSQL for several hubs) provides it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from monitor_server.store.alert_records import AlertRule, AlertState, Notifier, OutboxItem, Silence
from monitor_server.store.records import (
    ApiKey,
    AuditEvent,
    Command,
    Device,
    DeviceCredential,
    EnrollmentToken,
    PresenceEvent,
    RemovedDevice,
    Sample,
    Tier,
    User,
    UserSession,
)
from monitor_server.store.release_records import Release, ReleaseDevice, Rollout
from protocol.identity import Role

# What a hello reports of its device: id, when, and ``touch_device``'s ``info``.
Touch = tuple[str, float, Mapping[str, str | None]]


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # devices and samples
    async def write_samples(
        self,
        samples: Sequence[Sample],
        seen_at: float,
        onlines: Sequence[PresenceEvent] = (),
        hub: str | None = None,
    ) -> None:
        """Store the samples and each device's newest one; in the same transaction, ``onlines``
        as ``set_presence_many(onlines, hub, claim=True)`` stores them (a first-seen HTTP device
        goes online with its first sample, not in a transaction of its own)."""
        ...

    async def touch_device(self, device_id: str, seen_at: float, **info: str | None) -> None:
        """Create the device if new; set ``last_seen`` and what ``info`` reports (None keeps the
        stored value): ``hostname``, ``agent_version``, ``platform``, and ``agent_tags`` and
        ``commands`` as JSON arrays."""
        ...

    async def touch_devices(self, touches: Sequence[Touch]) -> None:
        """``touch_device`` for each, in order, in one transaction (a storm of hellos)."""
        ...

    async def list_devices(self) -> list[Device]: ...
    async def device_tags(self) -> dict[str, frozenset[str]]:
        """Every device's tags, the operator's and its agent's (what alert selectors read), without
        the rest of ``list_devices``."""
        ...

    async def get_device(self, device_id: str) -> Device | None: ...
    async def query_samples(
        self, device_id: str, since: float | None, until: float | None, limit: int
    ) -> list[Sample]: ...
    async def query_buckets(
        self, device_id: str, since: float | None, until: float | None, step: float, limit: int
    ) -> list[Sample]:
        """Aggregates per bucket of ``tier_step(step)`` seconds, the newest ``limit``, oldest first.

        From the coarsest history tier that fits in a bucket (``tier_for``), raw samples below a
        minute; each bucket carries averages, ``count``, and ``min`` / ``max`` per metric.
        """
        ...

    async def latest_sample(self, device_id: str) -> Sample | None: ...
    async def delete_samples_before(self, cutoff: float) -> int:
        """Delete raw samples older than ``cutoff`` (only those already rolled up); how many."""
        ...

    async def roll_up(self, batch: int = 5_000) -> int:
        """Fold the samples stored since the last call into every history tier; how many."""
        ...

    async def delete_rollups_before(self, tier: Tier, cutoff: float) -> int:
        """Delete the tier's rows whose span ends at or before ``cutoff``; how many."""
        ...

    async def rename_device(self, device_id: str, name: str | None) -> Device | None:
        """Set (or clear, with None) the display name; None if the device is unknown."""
        ...

    async def set_device_tags(self, device_id: str, tags: Sequence[str]) -> Device | None:
        """Replace the tags operators set; None if the device is unknown."""
        ...

    async def delete_device(self, device_id: str) -> RemovedDevice | None:
        """Delete the device, its samples, presence events, commands and credential in one transaction.

        None (and nothing deleted) when the hub has neither a device row nor a credential for it.
        """
        ...

    # presence
    async def set_presence(
        self,
        device_id: str,
        online: bool,
        reason: str,
        connection: str | None,
        at: float,
        hub: str | None = None,
    ) -> PresenceEvent | None:
        """Store a transition and return it. Online: ``hub`` holds the session now. Offline from
        ``hub``: None and nothing changed when another hub holds the session (it took over)."""
        ...

    async def set_presence_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None, *, claim: bool = False
    ) -> None:
        """Store many transitions in one transaction (offline ones release the holding hub).

        ``claim``: the online ones are sessions ``hub`` holds now, as ``set_presence`` records them;
        otherwise their holder stays."""
        ...

    async def set_offline_many(
        self, events: Sequence[PresenceEvent], hub: str | None = None
    ) -> list[PresenceEvent]:
        """Store offline transitions in one transaction, each as ``set_presence`` would: those
        from ``hub`` while another hub holds the session are left out. Returns the ones stored."""
        ...

    async def mark_hub_lost(self, hub: str, at: float) -> list[PresenceEvent]:
        """Every device online through ``hub`` goes offline (``hub_lost``) in one transaction."""
        ...

    async def presence_events(self, device_id: str, limit: int) -> list[PresenceEvent]: ...

    # commands
    async def create_command(
        self,
        device_id: str,
        command: str,
        args: dict[str, Any] | None,
        at: float,
        idempotency_key: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[Command, bool]:
        """``(command, created)``; a known key returns its command, Conflict if the body differs."""
        ...

    async def get_command(self, device_id: str, command_id: int) -> Command | None: ...
    async def list_commands(self, device_id: str, limit: int) -> list[Command]: ...
    async def commands_with_key(self, idempotency_key: str) -> list[Command]:
        """Every device's command queued with this Idempotency-Key (a bulk command's parts)."""
        ...

    async def open_commands(
        self, device_id: str, after_id: int = 0, limit: int = -1, at: float | None = None
    ) -> list[Command]:
        """Unacknowledged commands with ids above ``after_id``, oldest first (``limit`` < 0: all).

        With ``at``, commands whose expiry is at or before it are left out (never delivered).
        """

    async def expire_commands(self, at: float, device_id: str | None = None) -> list[Command]:
        """Mark ``expired`` the open commands past their expiry at ``at``; return exactly those, by id."""
        ...

    async def mark_delivered(self, command_ids: Sequence[int], at: float) -> list[Command]:
        """Move pending commands to delivered; return exactly the rows changed, by id."""
        ...

    async def ack_command(
        self,
        device_id: str,
        command_id: int,
        success: bool,
        message: str,
        result: dict[str, Any] | None,
        at: float,
    ) -> tuple[Command, bool]:
        """First ack wins: ``(stored command, whether this call acked it)``; NotFound if unknown."""
        ...

    async def cancel_command(self, device_id: str, command_id: int, at: float) -> Command:
        """Cancel an open command (again: no change); Conflict if already settled otherwise."""
        ...

    # identity: users and their sessions (DESIGN §10)
    async def create_user(self, user: User) -> None:
        """Conflict if the name is taken."""
        ...

    async def get_user(self, name: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def update_user(
        self, name: str, at: float, password_hash: str | None = None, role: Role | None = None
    ) -> User:
        """Change what is given (``changed_at`` = ``at``); NotFound if there is no such user."""
        ...

    async def delete_user(self, name: str) -> bool:
        """Remove the user, their sessions and their API keys in one transaction; False if unknown."""
        ...

    async def create_session(self, session: UserSession) -> None: ...
    async def get_session(self, id_hash: str) -> UserSession | None:
        """The session with this digest, revoked or expired included (the caller decides)."""
        ...

    async def revoke_session(self, id_hash: str) -> bool: ...
    async def delete_ended_sessions(self, now: float) -> int:
        """Forget sessions that are revoked or expired (both are refused anyway); how many."""

    async def revoke_user_sessions(self, user: str) -> int:
        """Revoke every session of ``user``; how many were live."""
        ...

    # identity: API keys
    async def create_api_key(self, key: ApiKey) -> None: ...
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this digest, revoked or expired included."""
        ...

    async def list_api_keys(self, owner: str | None = None) -> list[ApiKey]:
        """Keys not revoked (of one owner, or all), oldest first."""
        ...

    async def revoke_api_key(self, key_id: str) -> ApiKey | None:
        """Revoke a live key and return it; None if unknown or already revoked."""
        ...

    # identity: enrollment tokens and device credentials
    async def create_enrollment_token(self, token: EnrollmentToken) -> None: ...
    async def list_enrollment_tokens(self) -> list[EnrollmentToken]:
        """Tokens not revoked (expired and used-up ones included), oldest first."""
        ...

    async def revoke_enrollment_token(self, token_id: str) -> bool: ...
    async def enroll_device(
        self, token_hash: str, device_id: str, credential_hash: str, at: float
    ) -> DeviceCredential:
        """Spend one use of the token and store the device's credential, in one transaction.

        Unauthenticated if the token is unknown, revoked, expired or used up; Conflict if the
        device already has a credential (live or revoked: only a reset frees the id).
        """
        ...

    async def get_device_credential(self, device_id: str) -> DeviceCredential | None: ...
    async def find_device_credential(self, credential_hash: str) -> DeviceCredential | None:
        """The credential whose live or pending digest this is (revoked included)."""
        ...

    async def revoke_device_credential(self, device_id: str, at: float) -> DeviceCredential | None:
        """Mark the device's credential revoked (its pending one dropped); None if it has none."""
        ...

    async def reset_device_credential(self, device_id: str) -> bool:
        """Forget the device's credential (revoked or not) so the id may enroll again."""
        ...

    async def stage_device_credential(self, device_id: str, pending_hash: str, at: float) -> DeviceCredential:
        """Rotation, step 1: keep ``pending_hash`` beside the live credential (both work).

        NotFound if the device has no credential, Conflict if it is revoked.
        """
        ...

    async def confirm_device_credential(self, device_id: str, at: float) -> DeviceCredential:
        """Rotation, step 2 (the agent stored the new one): pending becomes live, the old stops.

        NotFound if the device has no credential, Conflict if nothing is pending or it is revoked.
        """
        ...

    # identity: audit log
    async def add_audit(self, event: AuditEvent) -> AuditEvent:
        """Store an event; returned with its id."""
        ...

    async def list_audit(self, since: float | None, limit: int) -> list[AuditEvent]:
        """Events at or after ``since``, newest first."""
        ...

    # alerts (DESIGN §11): rules, state per (rule, device), notifiers, the outbox, silences
    async def create_alert_rule(self, rule: AlertRule) -> AlertRule:
        """Store a rule (its ``id`` ignored) and return it with its id; Conflict if the name is taken."""
        ...

    async def list_alert_rules(self) -> list[AlertRule]: ...
    async def get_alert_rule(self, rule_id: int) -> AlertRule | None: ...
    async def update_alert_rule(self, rule: AlertRule) -> AlertRule | None:
        """Replace the rule with this id; None if unknown, Conflict if another rule has the name."""
        ...

    async def delete_alert_rule(self, rule_id: int) -> bool:
        """Delete the rule and its states in one transaction; False if unknown."""
        ...

    async def list_alert_states(self) -> list[AlertState]: ...
    async def list_active_alert_states(self) -> list[AlertState]:
        """The pending and firing states (every hub's), by rule then device."""
        ...

    async def delete_device_alert_states(self, device_id: str) -> int:
        """Delete a removed device's states (every rule's); how many."""
        ...

    async def save_alert_states(self, states: Sequence[AlertState]) -> None:
        """Insert or replace these states in one transaction."""
        ...

    async def delete_alert_states(self, keys: Sequence[tuple[int, str]]) -> None: ...
    async def enqueue_notifications(
        self, bodies: Sequence[tuple[int, dict[str, Any]]], notified: Sequence[AlertState], at: float
    ) -> list[int]:
        """In one transaction: an outbox row per ``(notifier_id, body)`` and the ``notified`` states
        (their ``last_notified_at`` set by the caller), so a notification is queued exactly once."""
        ...

    async def pending_notifications(self, limit: int = 1000) -> list[OutboxItem]:
        """Undelivered outbox rows, oldest first."""
        ...

    async def mark_notification_delivered(self, item_id: int, at: float) -> None: ...
    async def mark_notification_failed(self, item_id: int, error: str, next_attempt_at: float) -> None: ...
    async def delete_delivered_notifications(self, before: float) -> int: ...
    async def create_notifier(self, notifier: Notifier) -> Notifier:
        """Store a notifier (its ``id`` ignored); Conflict if the name is taken."""
        ...

    async def list_notifiers(self) -> list[Notifier]: ...
    async def delete_notifier(self, notifier_id: int) -> bool:
        """Delete the notifier and its undelivered notifications; False if unknown."""
        ...

    async def create_silence(self, silence: Silence) -> Silence: ...
    async def list_silences(self, active_at: float | None = None) -> list[Silence]:
        """Silences ending after ``active_at`` (all with None), oldest first."""
        ...

    async def delete_silence(self, silence_id: int) -> bool: ...

    # releases (DESIGN §12): published bundles, one rollout per version, each device's progress
    async def create_release(self, release: Release, bundle: bytes) -> None:
        """Store a release and its bundle's bytes; Conflict if that version is published already."""
        ...

    async def list_releases(self) -> list[Release]: ...
    async def get_release(self, version: str) -> Release | None: ...
    async def release_bundle(self, version: str) -> bytes | None: ...
    async def save_rollout(self, rollout: Rollout) -> None:
        """Create or replace the rollout of ``rollout.version``."""
        ...

    async def pause_rollout(self, version: str, created_at: float) -> bool:
        """Pause the rollout of ``version`` if it is still the one created at ``created_at``."""
        ...

    async def list_rollouts(self) -> list[Rollout]: ...
    async def get_rollout(self, version: str) -> Rollout | None: ...
    async def set_release_device(self, entry: ReleaseDevice) -> None:
        """Create or replace one device's state for one release."""
        ...

    async def list_release_devices(self, version: str) -> list[ReleaseDevice]: ...
    async def get_release_device(self, version: str, device_id: str) -> ReleaseDevice | None: ...
