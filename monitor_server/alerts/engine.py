"""The evaluator: every rule and every (rule, device) state in memory, fed samples and presence.

No I/O and no awaits: the hub calls ``on_sample`` for each sample as it arrives, so the cost is
one dict lookup for a device no rule selects, and O(rules selecting the device) otherwise (which
rules select a device is worked out once per device and kept until the rules or its tags change).
Transitions land in ``changed`` for the service to store and notify.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from monitor_server.alerts import rules as r
from monitor_server.alerts.rules import Kind, Phase, Rule
from monitor_server.store import Sample
from monitor_server.store.alert_records import AlertRule, AlertState

Key = tuple[int, str]


class Evaluator:
    def __init__(self) -> None:
        self.rules: dict[int, Rule] = {}
        self.states: dict[Key, AlertState] = {}
        self.changed: list[AlertState] = []  # transitions not yet taken by the service
        self._tags: dict[str, frozenset[str]] = {}
        self._online: set[str] = set()
        self._known: set[str] = set()
        self._sampled: dict[str, tuple[Rule, ...]] = {}  # threshold and status rules per device
        self._pending: set[Key] = set()

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
            self.states[state.key] = state
            if state.state == Phase.PENDING:
                self._pending.add(state.key)
        self.set_rules(rules, now)

    def set_rules(self, records: Iterable[AlertRule], now: float) -> list[Key]:
        """Replace the rules. States of deleted rules, or of devices a rule no longer selects, are
        forgotten (their keys returned); devices already offline start the new offline rules."""
        self.rules = {record.id: Rule.compile(record) for record in records}
        self._sampled.clear()
        gone = [key for key in self.states if not self._selected(key)]
        for key in gone:
            del self.states[key]
            self._pending.discard(key)
        for rule in self.rules.values():
            if rule.kind is Kind.OFFLINE:
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

    def forget_device(self, device_id: str) -> list[Key]:
        """A removed device: its states go (keys returned)."""
        self._known.discard(device_id)
        self._online.discard(device_id)
        self._tags.pop(device_id, None)
        self._sampled.pop(device_id, None)
        gone = [key for key in self.states if key[1] == device_id]
        for key in gone:
            del self.states[key]
            self._pending.discard(key)
        return gone

    # the streams

    def on_sample(self, sample: Sample, now: float) -> bool:
        """A sample arrived; whether a state changed."""
        device_id = sample.device_id
        selected = self._sampled.get(device_id)
        if selected is None:
            selected = self._index(device_id)
        if not selected:
            return False
        changed = False
        for rule in selected:
            value = rule.reading(sample)
            if value is not None:
                changed |= self._apply(
                    r.observe(rule, device_id, self.states.get((rule.id, device_id)), value, now)
                )
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
        for rule in self._selecting(device_id):
            changed |= self._apply(move(rule, device_id, self.states.get((rule.id, device_id)), now))
        return changed

    def tick(self, now: float) -> bool:
        """Pending states whose ``for`` elapsed fire (metric rules only while the device is online)."""
        changed = False
        for key in list(self._pending):
            rule, state = self.rules.get(key[0]), self.states.get(key)
            if rule is None or state is None:
                self._pending.discard(key)
                continue
            if rule.kind is not Kind.OFFLINE and key[1] not in self._online:
                continue
            changed |= self._apply(r.promote(rule, state, now))
        return changed

    def active(self) -> Iterator[AlertState]:
        """States pending or firing now."""
        return (s for s in self.states.values() if s.state != Phase.OK)

    # inside

    def _apply(self, state: AlertState | None) -> bool:
        if state is None:
            return False
        self.states[state.key] = state
        if state.state == Phase.PENDING:
            self._pending.add(state.key)
        else:
            self._pending.discard(state.key)
        self.changed.append(state)
        return True

    def _index(self, device_id: str) -> tuple[Rule, ...]:
        self._known.add(device_id)
        selected = tuple(rule for rule in self._selecting(device_id) if rule.kind is not Kind.OFFLINE)
        self._sampled[device_id] = selected
        return selected

    def _selecting(self, device_id: str) -> Iterator[Rule]:
        tags = self._tag_set(device_id)
        return (rule for rule in self.rules.values() if rule.selects(device_id, tags))

    def _tag_set(self, device_id: str) -> frozenset[str]:
        return self._tags.get(device_id, frozenset())

    def _selected(self, key: Key) -> bool:
        rule = self.rules.get(key[0])
        return rule is not None and rule.selects(key[1], self._tag_set(key[1]))
