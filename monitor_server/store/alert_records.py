"""Records of the alert tables (DESIGN §11): rules, their state per device, notifiers, the
notification outbox and silences. Both store backends return exactly these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from protocol import to_iso


def _iso(epoch: float | None) -> str | None:
    return to_iso(epoch) if epoch is not None else None


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A rule; ``id`` is 0 until stored. ``kind``: threshold, offline or status."""

    id: int
    name: str
    kind: str
    metric: str | None = None
    op: str | None = None
    value: float | None = None
    clear_value: float | None = None  # None: the same as ``value``
    for_seconds: float = 0.0
    severity: str = "warning"
    selector: dict[str, Any] = field(default_factory=dict)  # {"tags": [..], "devices": [..]}
    created_at: float = 0.0
    updated_at: float = 0.0
    notifiers: list[int] = field(default_factory=list)  # ids of the notifiers it goes to; empty: all

    def routes_to(self, notifier_id: int) -> bool:
        """Whether this rule's notifications go to that notifier."""
        return not self.notifiers or notifier_id in self.notifiers

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "metric": self.metric,
            "op": self.op,
            "value": self.value,
            "clear_value": self.clear_value,
            "for": self.for_seconds,
            "severity": self.severity,
            "selector": self.selector,
            "notifiers": self.notifiers,
            "created_at": to_iso(self.created_at),
            "updated_at": to_iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one (rule, device) stands: ``state`` is ok, pending or firing.

    ``last_notified_at`` is when a notification about it last went to the outbox: a firing state
    with ``last_notified_at < fired_at`` still owes its firing notification, an ok one with
    ``fired_at <= last_notified_at < resolved_at`` its resolved one (see ``owes``).
    """

    rule_id: int
    device_id: str
    state: str
    since: float
    value: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    last_notified_at: float | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.rule_id, self.device_id)

    def owes(self) -> str | None:
        """The notification still due for this state: "firing", "resolved" or None."""
        notified = self.last_notified_at
        if self.state == "firing" and self.fired_at is not None:
            return "firing" if notified is None or notified < self.fired_at else None
        fired, resolved = self.fired_at, self.resolved_at
        if self.state == "ok" and fired is not None and resolved is not None and notified is not None:
            return "resolved" if fired <= notified < resolved else None
        return None


@dataclass(frozen=True, slots=True)
class Notifier:
    """Where notifications go. ``url`` and ``headers`` may hold secrets: ``to_json`` redacts them."""

    id: int
    name: str
    kind: str  # webhook | apprise
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "url": redact_url(self.url),
            "headers": sorted(self.headers),  # names only: values are often tokens
            "created_at": to_iso(self.created_at),
        }


def redact_url(url: str) -> str:
    """Scheme and host only (``https://hooks.example.com/...``): paths, users and queries hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}/..." if parts.scheme else "<redacted>"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification body for one notifier, delivered in id order per notifier."""

    id: int
    notifier_id: int
    body: dict[str, Any]
    created_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Notifications of alerts matching ``matchers`` ({"device": .., "rule": ..}) wait until ``ends_at``."""

    id: int
    matchers: dict[str, Any]
    ends_at: float
    comment: str = ""
    created_by: str = ""
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": self.matchers,
            "ends_at": to_iso(self.ends_at),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": to_iso(self.created_at),
        }


def state_json(state: AlertState) -> dict[str, Any]:
    return {
        "rule_id": state.rule_id,
        "device_id": state.device_id,
        "state": state.state,
        "since": to_iso(state.since),
        "value": state.value,
        "fired_at": _iso(state.fired_at),
        "resolved_at": _iso(state.resolved_at),
    }


def rule_row(rule: AlertRule) -> tuple[Any, ...]:
    return (
        rule.name,
        rule.kind,
        rule.metric,
        rule.op,
        rule.value,
        rule.clear_value,
        rule.for_seconds,
        rule.severity,
        orjson.dumps(rule.selector).decode(),
        rule.created_at,
        rule.updated_at,
        orjson.dumps(rule.notifiers).decode(),
    )


def rule_of(r: Any) -> AlertRule:
    """From a stored row (SQLite or PostgreSQL), by column name."""
    return AlertRule(
        r["id"],
        r["name"],
        r["kind"],
        r["metric"],
        r["op"],
        r["value"],
        r["clear_value"],
        r["for_seconds"],
        r["severity"],
        orjson.loads(r["selector"]),
        r["created_at"],
        r["updated_at"],
        orjson.loads(r["notifiers"]),
    )
