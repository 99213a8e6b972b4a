"""Apprise notifiers (DESIGN §11): ntfy, Slack, Discord, e-mail... through one well-kept library.

The outbox holds the Alertmanager body (as for webhooks); ``text`` turns it into a short message
per group: firing or resolved, the rule(s), the devices, the severity. apprise is blocking
(requests underneath): ``send`` runs in a worker thread, never on the event loop. The URL holds the
service's token: apprise's own log is kept quiet and errors never carry it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import warnings
from types import ModuleType
from typing import Any

# apprise logs target URLs and request details, urllib3 (under requests) the path: a notifier URL is a secret.
for _name in ("apprise", "urllib3"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

MAX_DEVICES = 10  # named in a message; more are counted


def text(body: dict[str, Any]) -> tuple[str, str]:
    """(title, message) for one outbox body: a line per status and rule, naming its devices."""
    alerts: list[dict[str, Any]] = list(body.get("alerts", []))
    groups: dict[tuple[str, str, str], list[str]] = {}
    for alert in alerts:
        labels = alert.get("labels", {})
        key = (
            str(alert.get("status", "")),
            str(labels.get("alertname", "")),
            str(labels.get("severity", "")),
        )
        groups.setdefault(key, []).append(str(labels.get("device", "")))
    lines = []
    for (status, rule, severity), devices in groups.items():
        named = ", ".join(devices[:MAX_DEVICES])
        if len(devices) > MAX_DEVICES:
            named += f" and {len(devices) - MAX_DEVICES} more"
        lines.append(f"[{status.upper()}] {rule} ({severity}): {named}")
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    resolved = len(alerts) - firing
    parts = [f"{firing} firing"] if firing else []
    if resolved:
        parts.append(f"{resolved} resolved")
    title = f"monitor: {', '.join(parts) or 'no alerts'}"
    return title, "\n".join(lines)


@functools.cache
def _apprise() -> ModuleType:
    """apprise, its service plugins loaded once, on the calling (event loop) thread. Loading them
    imports ``imghdr``, deprecated: that warning is apprise's own, not ours to fail on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        apprise.Apprise().add("json://localhost")  # the first URL loads every plugin module
    return apprise


def valid_url(url: str) -> bool:
    """Whether apprise knows this URL's service (and can parse it)."""
    return bool(_apprise().Apprise().add(url))


def _send_blocking(apprise: ModuleType, url: str, title: str, message: str) -> bool:
    sender = apprise.Apprise()
    if not sender.add(url):
        return False
    return bool(sender.notify(body=message, title=title))


async def send(url: str, body: dict[str, Any]) -> str | None:
    """None once apprise delivered it; else why not (without the URL)."""
    title, message = text(body)
    try:
        ok = await asyncio.to_thread(_send_blocking, _apprise(), url, title, message)
    except Exception as exc:  # apprise plugins may raise anything; the message must not hold the URL
        return f"apprise: {type(exc).__name__}"
    return None if ok else "apprise: not delivered"
