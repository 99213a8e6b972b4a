"""The evaluator: every rule and every (rule, device) state in memory, fed samples and presence.

No I/O and no awaits: the hub calls ``on_samples`` with the samples of each frame as they arrive,
so the cost is one dict lookup for a device no rule selects, and O(rules selecting the device)
otherwise (which rules select a device is worked out once per device and kept until the rules or
its tags change). What moved lands in ``changed`` for the service to store and notify: each (rule,
device) once per run of a device's samples, in its state after the run (a batch replaying a noisy
series moves a state back and forth many times at the same instant; the service stores and
notifies the newest state only).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import operator
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby

from monitor_server.alerts import rules as r
from monitor_server.alerts.quiet import Scan, always_quiet, compile_quiet
from monitor_server.alerts.rules import Kind, Phase, Rule
from monitor_server.store import Sample
from monitor_server.store.alert_records import AlertRule, AlertState

Key = tuple[int, str]
# The rules of a device reading one field: the field, whether it is a column of ``Sample``, how to
# read it, and the rules.
_Group = tuple[str, bool, r.Reader, tuple[Rule, ...]]
# A device's groups and the ids of all their rules.
_Sampled = tuple[tuple[_Group, ...], frozenset[int]]
_UNWATCHED: _Sampled = ((), frozenset())  # a device no metric rule selects
_NEVER_STOPS: tuple[Scan, float] = (always_quiet, math.inf)  # its quick check, kept until a change
# What a run of samples from one device needs (``Evaluator._view``): its groups and their rule ids,
# and the states of its active (pending or firing) metric rules, a copy the run updates.
_View = tuple[tuple[_Group, ...], frozenset[int], dict[int, AlertState]]
# What a device's active rules watch (``Evaluator._watch``): (rule id, phase) pairs.
_Watch = frozenset[tuple[int, str]]
_QUICK_LIMIT = 4096  # compiled checks kept (rebuilt from cached factories when dropped)
_NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
_ANY_NUMBER = (">=", -sys.float_info.max)  # true for every finite number
_DEVICE = operator.attrgetter("device_id")
_CORE_FIELDS = frozenset({"cpu", "ram", "disk", "uptime_sec", "status"})


def _group(field: str, status: bool, rules: tuple[Rule, ...]) -> _Group:
    return (field, field in _CORE_FIELDS, r.reader(field, status), rules)


def _phase(rule: Rule, state: AlertState, now: float) -> str:
    """What an active state watches for: "firing", "pending", or "due" (its ``for`` elapsed)."""
    if state.state == Phase.PENDING:
        return "due" if now - state.since >= rule.record.for_seconds else Phase.PENDING
    return state.state


def _watched(rule: Rule, phase: str) -> list[tuple[str, float]]:
    """The (op, value) pairs a reading that moves the rule holds (``quiet.Reading``): an ok rule's
    condition; the opposite of a firing one's clear condition, or of a pending one's condition; a
    due rule moves at any reading."""
    if rule.kind is Kind.STATUS:  # the reading: 1.0 for "error", else 0.0
        return {Phase.OK: [("==", 1.0)], "due": [("==", 1.0), ("!=", 1.0)]}.get(phase, [("!=", 1.0)])
    op, value, clear = rule.record.op, rule.record.value, rule.record.clear_value
    if op not in _NEGATED or value is None:
        return []  # a rule the REST API would not store never fires (``Rule.compile``)
    if phase == Phase.OK:
        return [(op, float(value))]
    if phase == "due":
        return [_ANY_NUMBER]
    if phase == Phase.FIRING and clear is not None:
        return [(_NEGATED[op], float(clear))]
    return [(_NEGATED[op], float(value))]


class Evaluator:
    def __init__(self, start_offline: bool = True) -> None:
        # Whether devices known offline start the offline rules (pending at once). Not with several
        # hubs: a device online on another hub is never seen coming back here.
        self.start_offline = start_offline
        self.rules: dict[int, Rule] = {}
        self._reads_samples = False  # a rule other than an offline one exists
        self._offline_rules: list[Rule] = []  # moved by every presence change (``on_presence``)
        self.states: dict[Key, AlertState] = {}
        self.changed: list[AlertState] = []  # transitions not yet taken by the service
        self._tags: dict[str, frozenset[str]] = {}
        self._online: set[str] = set()
        self._known: set[str] = set()
        # Per device: its threshold and status rules, grouped by the field they read.
        self._sampled: dict[str, _Sampled] = {}
        # The compiled quick checks (``quiet.py``), by (a device's rule ids, what its active rules
        # watch): devices alike share one.
        self._quick: dict[tuple[frozenset[int], _Watch], Scan] = {}
        # Per device: its quick check now, and until when it holds (a pending state's ``for``
        # elapsing changes what it watches); dropped when one of its states moves.
        self._device_quick: dict[str, tuple[Scan, float]] = {}
        self._live: dict[str, dict[int, AlertState]] = {}  # per device: states pending or firing
        self._pending: set[Key] = set()
        self._firing: set[Key] = set()  # the repeat check walks these each tick, not every active state
        # (when its ``for`` elapses, key) of pending states: the tick pops what is due instead of
        # walking every pending state (10,000 devices offline: as many pending offline states).
        # One entry per key (``_queued``): a state that flaps between ok and pending keeps its
        # entry, which comes due no later than the newest pending's and is pushed again then.
        self._due: list[tuple[float, Key]] = []
        self._queued: set[Key] = set()

    # what the evaluator knows

    def load(
        self,
        rules: Iterable[AlertRule],
        states: Iterable[AlertState],
        devices: Iterable[tuple[str, bool, frozenset[str]]],
        now: float,
    ) -> None:
        """Start from the store: rules, stored states, and each device's (id, online, tags)."""
        for device_id, online, tags in devices:
            self._known.add(device_id)
            self._tags[device_id] = tags
            if online:
                self._online.add(device_id)
        for state in states:
            self._put(state)
        self.set_rules(rules, now)

    def set_rules(self, records: Iterable[AlertRule], now: float) -> list[Key]:
        """Replace the rules. States of deleted rules, or of devices a rule no longer selects, are
        forgotten (their keys returned); devices already offline start the new offline rules."""
        self.rules = {record.id: Rule.compile(record) for record in records}
        self._offline_rules = [rule for rule in self.rules.values() if rule.kind is Kind.OFFLINE]
        self._reads_samples = len(self._offline_rules) < len(self.rules)
        self._sampled.clear()
        self._quick.clear()
        self._device_quick.clear()
        self._due = [(self._due_at(key), key) for key in self._pending]  # ``for`` may have changed
        self._queued = set(self._pending)
        heapq.heapify(self._due)
        gone = [key for key in self.states if not self._selected(key)]
        for key in gone:
            self._drop(key)
        for rule in self.rules.values():
            if rule.kind is Kind.OFFLINE and self.start_offline:
                for device_id in self._known - self._online:
                    if (
                        rule.selects(device_id, self._tag_set(device_id))
                        and (rule.id, device_id) not in self.states
                    ):
                        self._apply(r.went_offline(rule, device_id, None, now))
        return gone

    def set_tags(self, device_id: str, tags: frozenset[str]) -> None:
        if self._tags.get(device_id) != tags:
            self._tags[device_id] = tags
            self._sampled.pop(device_id, None)
            self._device_quick.pop(device_id, None)

    def forget_device(self, device_id: str) -> list[Key]:
        """A removed device: its states go (keys returned)."""
        self._known.discard(device_id)
        self._online.discard(device_id)
        self._tags.pop(device_id, None)
        self._sampled.pop(device_id, None)
        self._device_quick.pop(device_id, None)
        gone = [key for key in self.states if key[1] == device_id]
        for key in gone:
            self._drop(key)
        return gone

    # the streams

    def on_samples(self, samples: Sequence[Sample], now: float) -> bool:
        """Samples arrived, in order; whether a state changed. Each run of samples from one device (a
        batch) is evaluated together (``_run``): ``changed`` gets each (rule, device) that moved in
        it once, in its state after the run's last sample."""
        if not self._reads_samples:  # no rule reads them: only that their devices exist counts
            self._known.update(sample.device_id for sample in samples)
            return False
        if len(samples) == 1:  # a live sample: no grouping
            return self._run(samples[0].device_id, samples, now, alone=True)
        changed = False
        for device_id, run in groupby(samples, _DEVICE):
            if self._run(device_id, run, now):
                changed = True
        return changed

    def on_sample(self, sample: Sample, now: float) -> bool:
        """A sample arrived; whether a state changed."""
        return self.on_samples((sample,), now)

    def _run(self, device_id: str, samples: Iterable[Sample], now: float, alone: bool = False) -> bool:
        """A run of the device's samples, in order, as if every rule observed each one. What the
        device's rules need is looked up once; the run's states (``states``) are kept here, and the
        indexes updated once, at its end. ``alone``: the run is one sample."""
        rest = iter(samples)
        kept = self._device_quick.get(device_id)
        if kept is not None and now < kept[1]:
            # The common case: the device's check holds and walks the run without a stop (a device
            # no metric rule selects keeps one that never stops). Nothing else is looked up.
            scan = kept[0]
            if (found := scan(rest)) is None:
                return False
            view = self._view(device_id)
            assert view is not None, "a device no rule selects keeps a check that never stops"
            groups, ids, states = view
        else:
            view = self._view(device_id)
            if view is None:
                self._device_quick[device_id] = _NEVER_STOPS
                return False
            groups, ids, states = view
            scan = self._quick_of(device_id, groups, ids, states, now)
            found = scan(rest)
        moved: dict[int, AlertState] = {}
        # Where a reading may move a rule, the rules of that field look closer; what moved changes
        # what the check watches.
        while found is not None:
            if self._look_closer(*found, groups, states, moved, now):
                if alone:
                    break  # no sample left to check: the device's next run builds its check
                scan = self._quick_for(groups, ids, self._watch(states, now))
            found = scan(rest)
        for state in moved.values():
            self._apply(state)
        return bool(moved)

    def _view(self, device_id: str) -> _View | None:
        """The device's rule groups and their ids, and its active rules' states (None: no metric
        rule selects it)."""
        sampled = self._sampled.get(device_id)
        if sampled is None:
            sampled = self._index(device_id)
        if sampled is _UNWATCHED:
            return None
        groups, ids = sampled
        live = self._live.get(device_id)
        if live is None or live.keys().isdisjoint(ids):
            return groups, ids, {}
        return groups, ids, {rule_id: state for rule_id, state in live.items() if rule_id in ids}

    def _watch(self, states: dict[int, AlertState], now: float) -> _Watch:
        """What the active rules among ``states`` watch: (id, "firing" | "pending" | "due") each,
        "due" a pending state whose ``for`` has elapsed (its next reading moves it)."""
        rules = self.rules
        return frozenset(
            (rule_id, _phase(rules[rule_id], state, now))
            for rule_id, state in states.items()
            if state.state != Phase.OK
        )

    def _look_closer(
        self,
        sample: Sample,
        mask: int,
        groups: tuple[_Group, ...],
        states: dict[int, AlertState],
        moved: dict[int, AlertState],
        now: float,
    ) -> bool:
        """The rules of the fields in ``mask`` (bit ``i``: ``groups[i]``) observe the sample: an
        active one its reading, an ok one only a reading that fires it. Whether one moved."""
        changed, device_id = False, sample.device_id
        for bit, (_, _, read, rules) in enumerate(groups):
            if not mask >> bit & 1:
                continue
            value = read(sample)
            if value is None:
                continue
            for rule in rules:
                state = states.get(rule.id)
                # What ``observe`` would find unmoved is skipped here: an ok rule the value does
                # not fire, a firing one it does not clear, a pending one it fires before its ``for``.
                if state is None or state.state == Phase.OK:
                    if not rule.fires(value):
                        continue
                    state = state or self.states.get((rule.id, device_id))
                elif state.state == Phase.FIRING:
                    if not rule.clears(value):
                        continue
                elif rule.fires(value) and now - state.since < rule.record.for_seconds:
                    continue
                new = r.observe(rule, device_id, state, value, now)
                if new is not None:
                    states[rule.id] = moved[rule.id] = new
                    changed = True
        return changed

    def on_presence(self, device_id: str, online: bool, now: float) -> bool:
        """The device went online or offline; whether a state changed."""
        self._known.add(device_id)
        if online:
            self._online.add(device_id)
        else:
            self._online.discard(device_id)
        move = r.came_online if online else r.went_offline
        changed = False
        tags = self._tag_set(device_id)
        for rule in self._moved_by_presence(device_id, online):
            if rule.selects(device_id, tags):
                changed |= self._apply(move(rule, device_id, self.states.get((rule.id, device_id)), now))
        return changed

    def _moved_by_presence(self, device_id: str, online: bool) -> list[Rule]:
        """The rules a presence change may move (``came_online``, ``went_offline``): the offline
        rules, and going offline the metric rules with a state pending for the device (dropped)."""
        if online:
            return self._offline_rules
        live = self._live.get(device_id)
        if not live:
            return self._offline_rules
        pending = [
            rule
            for rule_id, state in live.items()
            if state.state == Phase.PENDING
            and (rule := self.rules.get(rule_id)) is not None
            and rule.kind is not Kind.OFFLINE  # already among the offline rules
        ]
        return self._offline_rules + pending

    def tick(self, now: float) -> bool:
        """Pending states whose ``for`` elapsed fire (metric rules only while the device is online)."""
        changed = False
        due = self._due
        while due and due[0][0] <= now:
            _, key = heapq.heappop(due)
            self._queued.discard(key)
            rule, state = self.rules.get(key[0]), self.states.get(key)
            if key not in self._pending or rule is None or state is None:
                continue  # resolved or dropped since: a stale entry
            if rule.kind is not Kind.OFFLINE and key[1] not in self._online:
                self._queue(key, now + 1.0)  # fires once the device is back
                continue
            promoted = r.promote(rule, state, now)
            if promoted is None:  # pending again since this entry was pushed: due later
                self._queue(key, max(self._due_at(key), now + 1e-3))
            changed |= self._apply(promoted)
        return changed

    def _queue(self, key: Key, at: float) -> None:
        if key not in self._queued:
            self._queued.add(key)
            heapq.heappush(self._due, (at, key))

    def mark_notified(self, key: Key, at: float) -> AlertState | None:
        """Record that ``key``'s alert was notified at ``at``, in every index; the new state (None
        if the state is gone)."""
        state = self.states.get(key)
        if state is None:
            return None
        state = dataclasses.replace(state, last_notified_at=at)
        self._put(state)
        return state

    def firing(self) -> Iterator[AlertState]:
        """States firing now (from an index of them: no walk over every pending state)."""
        for key in self._firing:
            yield self.states[key]

    def active(self) -> Iterator[AlertState]:
        """States pending or firing now."""
        return (s for s in self.states.values() if s.state != Phase.OK)

    # inside

    def _apply(self, state: AlertState | None) -> bool:
        if state is None:
            return False
        self._put(state)
        self.changed.append(state)
        return True

    def _put(self, state: AlertState) -> None:
        key = state.key
        self._device_quick.pop(state.device_id, None)
        self.states[key] = state
        if state.state == Phase.OK:
            live = self._live.get(state.device_id)
            if live is not None:
                live.pop(state.rule_id, None)
                if not live:
                    del self._live[state.device_id]
        else:
            self._live.setdefault(state.device_id, {})[state.rule_id] = state
        if state.state == Phase.PENDING:
            self._pending.add(key)
            self._queue(key, self._due_at(key))
        else:
            self._pending.discard(key)
        if state.state == Phase.FIRING:
            self._firing.add(key)
        else:
            self._firing.discard(key)

    def _due_at(self, key: Key) -> float:
        """When the pending state ``key`` fires (its rule unknown: now, so the tick drops it)."""
        state, rule = self.states.get(key), self.rules.get(key[0])
        if state is None or rule is None:
            return 0.0
        return state.since + rule.record.for_seconds

    def _drop(self, key: Key) -> None:
        del self.states[key]
        self._device_quick.pop(key[1], None)
        self._pending.discard(key)
        self._firing.discard(key)
        live = self._live.get(key[1])
        if live is not None:
            live.pop(key[0], None)
            if not live:
                del self._live[key[1]]

    def _index(self, device_id: str) -> _Sampled:
        self._known.add(device_id)
        by_field: dict[tuple[str, bool], list[Rule]] = {}
        for rule in self._selecting(device_id):
            if rule.kind is not Kind.OFFLINE:
                by_field.setdefault((rule.field, rule.kind is Kind.STATUS), []).append(rule)
        groups = tuple(_group(name, status, tuple(rules)) for (name, status), rules in by_field.items())
        ids = frozenset(rule.id for rules in by_field.values() for rule in rules)
        sampled = (groups, ids) if groups else _UNWATCHED
        self._sampled[device_id] = sampled
        return sampled

    def _quick_of(
        self,
        device_id: str,
        groups: tuple[_Group, ...],
        ids: frozenset[int],
        states: dict[int, AlertState],
        now: float,
    ) -> Scan:
        """The device's quick check at the start of a run (kept until one of its states moves or a
        pending one comes due)."""
        found = self._device_quick.get(device_id)
        if found is not None and now < found[1]:
            return found[0]
        scan = self._quick_for(groups, ids, self._watch(states, now))
        pending = [
            self._due_at((rule_id, device_id))
            for rule_id, state in states.items()
            if state.state == Phase.PENDING
        ]
        self._device_quick[device_id] = (scan, min((due for due in pending if due > now), default=math.inf))
        return scan

    def _quick_for(self, groups: tuple[_Group, ...], ids: frozenset[int], watch: _Watch) -> Scan:
        """The quick check of a device's rules (``ids``, in ``groups``: reading ``i`` is
        ``groups[i]``), its active ones watching what ``watch`` says and the others their
        condition."""
        key = (ids, watch)
        found = self._quick.get(key)
        if found is None:
            if len(self._quick) >= _QUICK_LIMIT:
                self._quick.clear()
            phases = dict(watch)
            readings = []
            for field, core, _, rules in groups:
                pairs = [pair for rule in rules for pair in _watched(rule, phases.get(rule.id, Phase.OK))]
                readings.append((field, core, rules[0].kind is Kind.STATUS, tuple(sorted(pairs))))
            found = self._quick[key] = compile_quiet(tuple(readings))
        return found

    def _selecting(self, device_id: str) -> Iterator[Rule]:
        tags = self._tag_set(device_id)
        return (rule for rule in self.rules.values() if rule.selects(device_id, tags))

    def _tag_set(self, device_id: str) -> frozenset[str]:
        return self._tags.get(device_id, frozenset())

    def _selected(self, key: Key) -> bool:
        rule = self.rules.get(key[0])
        return rule is not None and rule.selects(key[1], self._tag_set(key[1]))
