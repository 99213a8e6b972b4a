"""Notification bodies in the Alertmanager webhook format, version 4, so existing receivers work.

https://prometheus.io/docs/alerting/latest/configuration/#webhook_config: one body per group
with ``alerts``, each carrying ``labels`` (here ``alertname`` = the rule's name, ``device``,
``severity``, ``kind`` and, for threshold rules, ``metric``), ``annotations``, ``startsAt``,
``endsAt`` (Alertmanager's zero time while firing) and a ``fingerprint`` of its labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from monitor_server.store.alert_records import AlertRule, AlertState
from protocol import to_iso

ZERO_TIME = "0001-01-01T00:00:00Z"
GROUP_KEY = "{}:{}"  # one group per notifier: no grouping labels


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a notification: a (rule, device) state as it was when queued."""

    rule: AlertRule
    state: AlertState
    status: str  # firing | resolved

    def labels(self) -> dict[str, str]:
        labels = {
            "alertname": self.rule.name,
            "device": self.state.device_id,
            "severity": self.rule.severity,
            "kind": self.rule.kind,
        }
        if self.rule.metric:
            labels["metric"] = self.rule.metric
        return labels

    def annotations(self) -> dict[str, str]:
        rule, state = self.rule, self.state
        if rule.kind == "offline":
            summary = f"{state.device_id} offline for {rule.for_seconds:g} s or more"
        elif rule.kind == "status":
            summary = f"{state.device_id} reports status error"
        else:
            summary = f"{state.device_id}: {rule.metric} {rule.op} {rule.value:g}"
            if state.value is not None:
                summary += f" (last {state.value:g})"
        return {"summary": summary if self.status == "firing" else f"resolved: {summary}"}

    def to_json(self, external_url: str) -> dict[str, Any]:
        labels = self.labels()
        ends = self.state.resolved_at if self.status == "resolved" else None
        return {
            "status": self.status,
            "labels": labels,
            "annotations": self.annotations(),
            "startsAt": to_iso(self.state.fired_at or self.state.since),
            "endsAt": to_iso(ends) if ends is not None else ZERO_TIME,
            "generatorURL": f"{external_url}/alerts",
            "fingerprint": fingerprint(labels),
        }


def fingerprint(labels: dict[str, str]) -> str:
    """Stable per alert (rule name and device...): 16 hex digits, as Alertmanager's are."""
    text = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def body(receiver: str, alerts: list[Alert], external_url: str) -> dict[str, Any]:
    """The webhook body for ``receiver`` (the notifier's name) carrying ``alerts``."""
    rendered = [alert.to_json(external_url) for alert in alerts]
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in rendered) else "resolved",
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": _common([a["labels"] for a in rendered]),
        "commonAnnotations": _common([a["annotations"] for a in rendered]),
        "externalURL": external_url,
        "alerts": rendered,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
