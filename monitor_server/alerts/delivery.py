"""Delivering the notification outbox: in id order per notifier, retried with exponential backoff.

A notifier's next notification waits for the one before it, so a receiver that is down for
minutes gets everything afterwards, once, in order. A row is marked delivered only after the
receiver answered 2xx. A notifier's URL and headers may hold secrets: errors and logs name the
notifier and its scheme and host only (and httpx's own request log is kept quiet for that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from monitor_server.alerts import apprise_notify
from monitor_server.cluster import Exclusive
from monitor_server.store import Store
from monitor_server.store.alert_records import Notifier, OutboxItem, redact_url

log = logging.getLogger("monitor_server.alerts")

# httpx logs every request's full URL at INFO: a webhook URL is a secret.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

IDLE_WAIT = 30.0  # seconds between passes when nothing is due and nothing wakes the loop
NOT_MINE_WAIT = 5.0  # another hub holds the delivery lock: look again after this
KEEP_DELIVERED = 7 * 86400.0  # seconds delivered notifications stay in the outbox (to look into)
CLEANUP_EVERY = 3600.0


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: base, 2 x base, 4 x base... capped."""
    return float(min(ceiling, base * 2 ** min(attempts, 32)))


class Delivery:
    def __init__(
        self,
        store: Store,
        notifiers: Callable[[], dict[int, Notifier]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._notifiers = notifiers
        self._clock = clock
        self.retry_base = 1.0
        self.retry_max = 300.0
        self.timeout = 10.0
        self.delivered = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._next_cleanup = 0.0

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop after the attempt in flight (cancelling it could send a notification twice)."""
        self._closing = True
        self._wake.set()

    async def run(self, exclusive: Exclusive) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            while not self._closing:
                self._wake.clear()
                wait = NOT_MINE_WAIT
                try:
                    async with exclusive("alert_delivery") as mine:
                        if mine:
                            wait = await self.deliver_due(client)
                            await self._clean_up()
                except Exception:
                    log.exception("alert delivery pass failed; retrying in %g s", NOT_MINE_WAIT)
                if self._closing:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.01))

    async def deliver_due(self, client: httpx.AsyncClient) -> float:
        """Send what is due, each notifier's rows in order; seconds until the next row is due."""
        items = await self._store.pending_notifications()
        notifiers = self._notifiers()
        by_notifier: dict[int, list[OutboxItem]] = {}
        for item in items:
            by_notifier.setdefault(item.notifier_id, []).append(item)
        waits = await asyncio.gather(
            *(self._drain(client, notifiers.get(nid), rows) for nid, rows in by_notifier.items())
        )
        return min([IDLE_WAIT, *waits])

    async def _clean_up(self) -> None:
        now = self._clock()
        if now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_EVERY
            deleted = await self._store.delete_delivered_notifications(now - KEEP_DELIVERED)
            if deleted:
                log.info(
                    "deleted %d notifications delivered more than %g days ago",
                    deleted,
                    KEEP_DELIVERED / 86400,
                )

    async def _drain(
        self, client: httpx.AsyncClient, notifier: Notifier | None, rows: list[OutboxItem]
    ) -> float:
        for item in rows:
            if self._closing:
                return IDLE_WAIT
            now = self._clock()
            if item.next_attempt_at > now:
                return item.next_attempt_at - now
            if notifier is None:  # deleted meanwhile: its rows go with it
                return IDLE_WAIT
            error = await self._send(client, notifier, item)
            if error is None:
                await self._store.mark_notification_delivered(item.id, self._clock())
                self.delivered += 1
                continue
            delay = backoff(item.attempts, self.retry_base, self.retry_max)
            await self._store.mark_notification_failed(item.id, error, self._clock() + delay)
            log.warning(
                "notifier %s (%s): notification %d failed (%s), attempt %d; next in %g s",
                notifier.name,
                redact_url(notifier.url),
                item.id,
                error,
                item.attempts + 1,
                delay,
            )
            return delay
        return IDLE_WAIT

    async def _send(self, client: httpx.AsyncClient, notifier: Notifier, item: OutboxItem) -> str | None:
        """None once the receiver took it; else why not (without the URL)."""
        if notifier.kind == "apprise":
            return await apprise_notify.send(notifier.url, item.body)
        headers = {"User-Agent": "monitor-hub", **notifier.headers}
        try:
            response = await client.post(notifier.url, json=item.body, headers=headers)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            return _scrub(f"{type(exc).__name__}: {exc}", notifier.url)
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def _scrub(text: str, url: str) -> str:
    return text.replace(url, redact_url(url))[:300]
