"""Alerts (DESIGN §11): rules evaluated on the sample and presence streams, a stored state per
(rule, device), notifications grouped per notifier and delivered through a stored outbox."""

from __future__ import annotations

from monitor_server.alerts.service import AlertService

__all__ = ["AlertService"]
