"""The alert service: evaluation fed by the hub's sample and presence streams, states stored on
every transition, notifications grouped per notifier and queued in the stored outbox.

Nothing here runs per sample but ``on_samples`` (no await, no query). One task (``_run_writer``)
stores transitions and queues notifications, so the two never race: a state's
``last_notified_at`` is written in the same transaction as the outbox rows that notify it, and a
restart re-derives from the stored states what is still owed (``AlertState.owes``), so a firing
alert is neither lost nor sent twice. Silenced alerts are held and sent when the silence ends
(if still owed then).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from monitor_server.alerts import webhook
from monitor_server.alerts.delivery import Delivery
from monitor_server.alerts.engine import Evaluator, Key
from monitor_server.alerts.rules import Kind as RuleKind
from monitor_server.alerts.rules import Rule
from monitor_server.cluster import Exclusive
from monitor_server.cluster.notice import Kind, Notice
from monitor_server.events import AlertChanged
from monitor_server.store import PresenceEvent, Sample, Store
from monitor_server.store.alert_records import AlertRule, AlertState, Notifier, Silence

log = logging.getLogger("monitor_server.alerts")

GROUP_WAIT = 2.0  # default seconds alerts changing together wait to go out in one notification
TICK = 1.0  # seconds between promotions of pending states whose ``for`` elapsed
REPEAT = 4 * 3600.0  # default seconds before an alert still firing is notified again (Alertmanager's)
RELOAD = 15.0  # seconds between re-reads of rules, notifiers and silences (a safety net: other hubs
# tell their changes at once, an ``alert_config`` notice)
CONFIG = ("rules", "notifiers", "silences")  # what an ``alert_config`` notice says changed
TAGS_READ_ONE_BY_ONE = 20  # devices back online whose tags are read one query each; more: one list
STOP_WAIT = 5.0  # seconds a stopping hub lets a delivery attempt in flight finish
# Seconds at least between two writes of transitions: a fleet whose samples keep crossing
# thresholds costs a transaction per pace, not one per sample that moved a state (newest wins).
PERSIST_PACE = 0.25
# Seconds a metric rule's state stays pending before it is stored. Most pending runs of a noisy
# metric end within seconds, back to ok: neither move is written (the store still holds the ok
# before them). A restart forgets a pending run shorter than this: its ``for`` starts again at the
# device's next sample. An offline rule's pending state follows presence, not a noisy metric, and
# is stored at once: a restart keeps when the device went away.
PENDING_STORED_AFTER = 10.0


def _waits_to_store(rule: Rule | None) -> bool:
    """Whether a pending state of ``rule`` waits ``PENDING_STORED_AFTER`` before it is stored."""
    return rule is None or rule.kind is not RuleKind.OFFLINE


def silences_alert(silence: Silence, rule: AlertRule, state: AlertState, now: float) -> bool:
    """Whether ``silence`` holds this alert: active, and every matcher it gives equal."""
    if silence.ends_at <= now:
        return False
    wanted = silence.matchers
    if "device" in wanted and wanted["device"] != state.device_id:
        return False
    if "rule" in wanted and wanted["rule"] not in (rule.name, rule.id):
        return False
    return not ("severity" in wanted and wanted["severity"] != rule.severity)


class AlertService:
    def __init__(
        self,
        store: Store,
        external_url: str,
        clock: Callable[[], float] = time.time,
        hub_id: str | None = None,
        publish: Callable[[AlertChanged], None] | None = None,
        group_wait: float = GROUP_WAIT,
        repeat_interval: float = REPEAT,
        tell: Callable[[Notice], None] | None = None,
    ) -> None:
        self._store = store
        self._tell = tell  # several hubs: rules, notifiers and silences changed here are told to the others
        self._publish = publish  # dashboards are told each stored transition (the hub's bus)
        self._hub_id = hub_id  # several hubs (DESIGN §13): this hub's id
        self._clock = clock
        self._external_url = external_url
        self.evaluator = Evaluator(start_offline=hub_id is None)
        self.delivery = Delivery(store, lambda: self._notifiers, clock)
        self.reload_interval = RELOAD
        self.group_wait = group_wait  # MONITOR_ALERT_GROUP_WAIT
        self.repeat_interval = repeat_interval  # MONITOR_ALERT_REPEAT_INTERVAL; 0: never repeat
        self._notifiers: dict[int, Notifier] = {}
        self._silences: list[Silence] = []
        self._dirty: dict[Key, AlertState] = {}  # transitions not stored yet
        # Pending states not stored yet (``PENDING_STORED_AFTER``), oldest first.
        self._young: OrderedDict[Key, AlertState] = OrderedDict()
        self._unshown: dict[Key, AlertState] = {}  # transitions not told to dashboards yet
        self._last_write = 0.0  # time.monotonic() of the last write of transitions
        self._due: set[Key] = set()  # may owe a notification: looked at when the group goes out
        self._held: set[Key] = set()  # owed but silenced
        # Firing alerts by when a repeat is due (``_repeats_due``): (when, key), and each key's newest when.
        self._repeats: list[tuple[float, Key]] = []
        self._repeat_at: dict[Key, float] = {}
        self._deadline: float | None = None  # when the current group goes out
        self._tags_to_read: set[str] = set()  # devices whose tags may have changed
        self._forgotten: set[str] = set()  # removed devices whose stored states are to be deleted
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._delivery_task: asyncio.Task[None] | None = None
        self._started = False

    # life

    async def start(self, exclusive: Exclusive) -> None:
        await self._load()
        self._started = True
        self._spawn(self._run_writer())
        self._spawn(self._run_ticks())
        self._delivery_task = asyncio.get_running_loop().create_task(self.delivery.run(exclusive))

    async def stop(self) -> None:
        self._started = False
        if self._delivery_task is not None:
            self.delivery.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._delivery_task), STOP_WAIT)
            except TimeoutError:
                self._delivery_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._delivery_task
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._store_young(math.inf)
        try:
            await self._persist()  # transitions decided so far survive the restart
        except Exception:
            log.exception("alert states not stored at shutdown")

    # the streams (the hub calls these)

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Samples as they arrive, in order (one clock reading for them all)."""
        if self._started and self.evaluator.on_samples(samples, self._clock()):
            self._take()

    def on_presence(self, event: PresenceEvent) -> None:
        if not self._started:
            return
        if event.online and any(rule.tags for rule in self.evaluator.rules.values()):
            self._tags_to_read.add(event.device_id)  # the tags its hello reported may be new
            self._wake.set()
        if self.evaluator.on_presence(event.device_id, event.online, event.at):
            self._take()

    def forget_device(self, device_id: str, stored: bool = True) -> None:
        """A removed device: its states go from memory and, unless ``stored`` is False (another
        hub removed it and deletes them), from the store, without notifying."""
        self._forget(self.evaluator.forget_device(device_id))
        if stored and self._started:
            self._forgotten.add(device_id)
            self._wake.set()

    # what REST reads and changes

    async def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts now, each with its rule's name and severity and whether silenced.

        Alone: this hub's evaluator holds every device's. With several hubs each evaluates the
        devices connected to it and stores every transition: the stored states, with this hub's
        transitions not stored yet over them, are every hub's alerts.
        """
        now = self._clock()
        if self._hub_id is None:
            states: list[AlertState] = list(self.evaluator.active())
        else:
            active = {s.key: s for s in await self._store.list_active_alert_states()}
            for key, state in [*self._dirty.items(), *self._young.items()]:  # the young are newer
                if state.state == "ok":
                    active.pop(key, None)
                else:
                    active[key] = state
            states = list(active.values())
        shown = (self._event(state, now) for state in sorted(states, key=lambda s: s.key))
        return [event.record() for event in shown if event is not None]

    @property
    def silences(self) -> tuple[Silence, ...]:
        """The silences this hub holds notifications for (read at start, on changes, and reloads)."""
        return tuple(self._silences)

    def _event(self, state: AlertState, now: float) -> AlertChanged | None:
        rule = self.evaluator.rules.get(state.rule_id)
        if rule is None:
            return None
        silenced = any(silences_alert(s, rule.record, state, now) for s in self._silences)
        return AlertChanged(state, rule.record.name, rule.record.severity, rule.record.kind, silenced)

    async def rules_changed(self) -> None:
        """A rule was created, changed or deleted here: read them again, and tell the other hubs."""
        await self._reload_rules()
        self._told("rules")

    async def notifiers_changed(self) -> None:
        await self._reload_notifiers()
        self._told("notifiers")

    async def silences_changed(self) -> None:
        await self._reload_silences()
        self._told("silences")

    async def config_changed(self, what: str) -> None:
        """Another hub changed rules, notifiers or silences (an ``alert_config`` notice): read them
        again now rather than at the next periodic reload. Nothing is told back."""
        if not self._started:
            return
        if what == "rules":
            await self._reload_rules()
        elif what == "notifiers":
            await self._reload_notifiers()
        elif what == "silences":
            await self._reload_silences()

    def _told(self, what: str) -> None:
        if self._tell is not None:
            self._tell(Notice(Kind.ALERT_CONFIG, None, {"what": what}))

    async def _reload_notifiers(self) -> None:
        self._notifiers = {n.id: n for n in await self._store.list_notifiers()}

    async def _reload_silences(self) -> None:
        self._silences = await self._store.list_silences(active_at=self._clock())
        self._release_held()

    # inside: loading and reloading

    async def _load(self) -> None:
        store, now = self._store, self._clock()
        devices = await store.list_devices()
        known = [(d.device_id, d.online, frozenset(d.all_tags())) for d in devices]
        self.evaluator.load(await store.list_alert_rules(), await store.list_alert_states(), known, now)
        self._notifiers = {n.id: n for n in await store.list_notifiers()}
        self._silences = await store.list_silences(active_at=now)
        # Another live hub's devices: that hub notifies what they owe.
        theirs = {d.device_id for d in devices if d.online and d.hub_id not in (None, self._hub_id)}
        owed = {
            s.key
            for s in self.evaluator.states.values()
            if s.owes() is not None and s.device_id not in theirs
        }
        self._take()
        self._schedule_repeats(self.evaluator.firing())
        if owed:
            log.info("%d alert notifications owed from before the restart", len(owed))
            self._mark_due(owed)

    async def _reload_rules(self) -> None:
        rules = await self._store.list_alert_rules()
        if [r.record for r in self.evaluator.rules.values()] == rules:
            return
        gone = self.evaluator.set_rules(rules, self._clock())
        self._forget(gone)
        await self._store.delete_alert_states(gone)
        self._take()

    async def _reload_tags(self) -> None:
        if any(rule.tags for rule in self.evaluator.rules.values()):
            for device_id, tags in (await self._store.device_tags()).items():
                self.evaluator.set_tags(device_id, tags)

    # inside: transitions, storage, notifications

    def _forget(self, keys: Iterable[Key]) -> None:
        """States gone from the evaluator: nothing about them is stored, shown or notified."""
        for key in keys:
            self._dirty.pop(key, None)
            self._young.pop(key, None)
            self._unshown.pop(key, None)
            self._due.discard(key)
            self._held.discard(key)

    def _take(self) -> None:
        """Collect the evaluator's transitions: to store, and perhaps to notify."""
        changed = self.evaluator.changed
        if not changed:
            return
        self.evaluator.changed = []
        young, rules = self._young, self.evaluator.rules
        for state in changed:
            key = state.key
            self._unshown[key] = state
            if state.state == "pending" and _waits_to_store(rules.get(state.rule_id)):
                young[key] = state  # it follows ok (stored, or in ``_dirty``)
            elif young.pop(key, None) is None or state.state != "ok":
                self._dirty[key] = state
            # else a short pending run ended: the store still holds the ok from before it
        self._mark_due({s.key for s in changed if s.state != "pending"})
        self._wake.set()

    def _mark_due(self, keys: set[Key]) -> None:
        if not keys:
            return
        self._held -= keys
        if not self._due:
            self._deadline = self._clock() + self.group_wait
        self._due |= keys
        self._wake.set()

    def _release_held(self) -> None:
        held, self._held = self._held, set()
        self._mark_due(held)

    async def _run_writer(self) -> None:
        delay = 0.1
        while True:
            timeout = None
            if self._due and self._deadline is not None:
                timeout = max(0.0, self._deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._pace()
                await self._read_tags()
                await self._delete_forgotten()
                await self._persist()
                if self._due and self._deadline is not None and self._clock() >= self._deadline:
                    await self._flush()
                delay = 0.1
            except Exception:
                log.exception("storing alert states or notifications failed; retrying in %g s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()

    async def _pace(self) -> None:
        """Let transitions gather until ``PERSIST_PACE`` after the last write."""
        wait = self._last_write + PERSIST_PACE - time.monotonic()
        if (self._dirty or self._unshown) and wait > 0:
            await asyncio.sleep(wait)

    async def _read_tags(self) -> None:
        devices, self._tags_to_read = self._tags_to_read, set()
        if len(devices) > TAGS_READ_ONE_BY_ONE:  # a fleet reconnecting: one query, not thousands
            for device_id, tags in (await self._store.device_tags()).items():
                if device_id in devices:
                    self.evaluator.set_tags(device_id, tags)
            return
        for device_id in devices:
            found = await self._store.get_device(device_id)
            if found is not None:
                self.evaluator.set_tags(device_id, frozenset(found.all_tags()))

    async def _delete_forgotten(self) -> None:
        for device_id in list(self._forgotten):
            await self._store.delete_device_alert_states(device_id)
            self._forgotten.discard(device_id)

    async def _persist(self) -> None:
        """Store the transitions not stored yet, then tell dashboards every transition since the
        last pass (the newest per rule and device)."""
        if not self._dirty and not self._unshown:
            return
        batch, self._dirty = self._dirty, {}
        shown, self._unshown = self._unshown, {}
        self._last_write = time.monotonic()
        try:
            if batch:
                await self._store.save_alert_states(list(batch.values()))
        except BaseException:
            self._dirty = {**batch, **self._dirty}  # newer transitions win
            self._unshown = {**shown, **self._unshown}
            raise
        for key, state in batch.items():
            if state.state == "pending":  # stored early (``_flush`` marked it): no longer young
                self._young.pop(key, None)
        if self._publish is not None:
            now = self._clock()
            for state in shown.values():
                event = self._event(state, now)
                if event is not None:
                    self._publish(event)

    def _store_young(self, until: float) -> None:
        """Pending states pending since ``until`` or before go to ``_dirty`` (their current state)."""
        young, states = self._young, self.evaluator.states
        while young:
            key, state = next(iter(young.items()))
            if state.since > until:
                break
            del young[key]
            current = states.get(key)
            if current is not None and current.state == "pending":
                self._dirty[key] = current

    async def _flush(self) -> None:
        """The group goes out: one notification per notifier with every alert owed, not silenced and
        routed to it (a rule naming no notifier goes to all)."""
        now = self._clock()
        keys, self._due, self._deadline = self._due, set(), None
        alerts: list[webhook.Alert] = []
        for key in sorted(keys):
            state, rule = self.evaluator.states.get(key), self.evaluator.rules.get(key[0])
            owed = state.owes() or self._repeat(state, now) if state is not None else None
            if state is None or rule is None or owed is None:
                continue
            if any(silences_alert(s, rule.record, state, now) for s in self._silences):
                self._held.add(key)
                continue
            alerts.append(webhook.Alert(rule.record, state, owed))
        if not alerts:
            return
        bodies = []
        for notifier in self._notifiers.values():  # apprise ones render their text from it at delivery
            routed = [a for a in alerts if a.rule.routes_to(notifier.id)]  # a rule's notifiers, or all
            if routed:
                bodies.append((notifier.id, webhook.body(notifier.name, routed, self._external_url)))
        notified = [dataclasses.replace(a.state, last_notified_at=now) for a in alerts]
        try:
            await self._store.enqueue_notifications(bodies, notified, now)
        except BaseException:
            self._mark_due({a.state.key for a in alerts})
            raise
        for state in notified:  # what changed meanwhile keeps its change, and is marked notified
            current = self.evaluator.mark_notified(state.key, now)
            if current is not None and state.key in self._dirty:
                self._dirty[state.key] = current
        self._schedule_repeats(notified)
        log.info("%d alert(s) queued for %d notifier(s)", len(alerts), len(bodies))
        self.delivery.wake()

    def _repeat(self, state: AlertState, now: float) -> str | None:
        """ "firing" when the alert, notified firing, has been firing a repeat interval since."""
        notified, fired = state.last_notified_at, state.fired_at
        if state.state != "firing" or not self.repeat_interval or notified is None or fired is None:
            return None
        return "firing" if fired <= notified <= now - self.repeat_interval else None

    def _schedule_repeats(self, states: Iterable[AlertState]) -> None:
        """Firing alerts notified: their repeat is looked at a repeat interval after."""
        if not self.repeat_interval:
            return
        for state in states:
            if state.state == "firing" and state.last_notified_at is not None:
                when = state.last_notified_at + self.repeat_interval
                if self._repeat_at.get(state.key) != when:
                    self._repeat_at[state.key] = when
                    heapq.heappush(self._repeats, (when, state.key))

    def _repeats_due(self, now: float) -> set[Key]:
        """Firing alerts whose repeat is due: those scheduled until ``now``, not every firing one."""
        due: set[Key] = set()
        repeats, scheduled, states = self._repeats, self._repeat_at, self.evaluator.states
        while repeats and repeats[0][0] <= now:
            when, key = heapq.heappop(repeats)
            if scheduled.get(key) != when:
                continue  # scheduled again since
            del scheduled[key]
            if key in self._held or key in self._due:
                continue  # notified later, and scheduled again then
            state = states.get(key)
            if state is not None and self._repeat(state, now):
                due.add(key)
        return due

    async def _run_ticks(self) -> None:
        last_reload = self._clock()
        while True:
            await asyncio.sleep(TICK)
            now = self._clock()
            try:
                if self.evaluator.tick(now):
                    self._take()
                self._store_young(now - PENDING_STORED_AFTER)
                if self._dirty:
                    self._wake.set()
                self._mark_due(self._repeats_due(now))
                if self._held and any(s.ends_at <= now for s in self._silences):
                    self._silences = [s for s in self._silences if s.ends_at > now]
                    self._release_held()
                if now >= last_reload + self.reload_interval:
                    last_reload = now
                    await self._reload_rules()
                    await self._reload_notifiers()
                    await self._reload_silences()  # one ended on another hub releases what it held
                    await self._reload_tags()
            except Exception:
                log.exception("alert tick failed; retrying next tick")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))
