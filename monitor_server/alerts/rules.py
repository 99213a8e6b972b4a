"""Alert rules compiled for evaluation, and the state machine of one (rule, device), pure.

``ok -> pending -> firing -> ok``: a condition true makes it pending (firing at once when ``for``
is 0); true for ``for`` seconds makes it firing; only the clear condition resolves it (hysteresis:
``cpu > 90`` with ``clear_value`` 80 resolves when ``cpu <= 80``). Each function returns the new
state, or None when nothing changes, so the caller stores and notifies transitions only.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from monitor_server.store import Sample
from monitor_server.store.alert_records import AlertRule, AlertState
from protocol.errors import IllegalTransition


class Phase(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Kind(StrEnum):
    THRESHOLD = "threshold"
    OFFLINE = "offline"
    STATUS = "status"


_MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.OK: frozenset({Phase.PENDING, Phase.FIRING}),
    Phase.PENDING: frozenset({Phase.OK, Phase.FIRING}),
    Phase.FIRING: frozenset({Phase.OK}),
}

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
# ``reading OP value`` as one C call on the rule's value (``value.__lt__(reading)`` is ``reading > value``).
_MIRRORED = {">": "__lt__", ">=": "__le__", "<": "__gt__", "<=": "__ge__", "==": "__eq__", "!=": "__ne__"}
# The sample fields with their own column; any other numeric field is read from ``extra``.
_CORE = frozenset({"cpu", "ram", "disk", "uptime_sec"})


def _never(value: float) -> bool:
    return False


def transition(old: Phase, new: Phase) -> Phase:
    """``new``, if the lifecycle allows moving there from ``old``; IllegalTransition otherwise."""
    if new not in _MOVES[old]:
        raise IllegalTransition(f"alert state {old} cannot become {new}")
    return new


@dataclass(frozen=True, slots=True)
class Rule:
    """An ``AlertRule`` ready to evaluate: its condition, its clear condition and its selector."""

    record: AlertRule
    fires: Callable[[float], bool]
    clears: Callable[[float], bool]
    tags: frozenset[str]
    devices: frozenset[str]
    # The record's id and kind, as fields: read for every sample and presence change (an enum
    # lookup per read cost more than the check it guards).
    id: int = 0
    kind: Kind = Kind.THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.record.id)
        object.__setattr__(self, "kind", Kind(self.record.kind))

    @classmethod
    def compile(cls, record: AlertRule) -> Rule:
        selector = record.selector or {}
        tags = frozenset(selector.get("tags") or ())
        devices = frozenset(selector.get("devices") or ())
        if record.kind == Kind.THRESHOLD:
            mirrored, value = _MIRRORED.get(record.op or ""), record.value
            if mirrored is None or value is None:  # not stored by the REST API, which checks both
                return cls(record, _never, _never, tags, devices)
            clear = float(value if record.clear_value is None else record.clear_value)
            holds_at_clear = getattr(clear, mirrored)
            fires = getattr(float(value), mirrored)
            return cls(record, fires, lambda v: not holds_at_clear(v), tags, devices)
        # status: 1.0 for a sample reporting "error", 0.0 for any other status
        return cls(record, lambda v: v >= 1.0, lambda v: v < 1.0, tags, devices)

    def selects(self, device_id: str, tags: frozenset[str]) -> bool:
        """No selector: every device; else the devices listed and those carrying a listed tag."""
        if not self.tags and not self.devices:
            return True
        return device_id in self.devices or not self.tags.isdisjoint(tags)

    @property
    def field(self) -> str:
        """What it reads in a sample: a metric's name, or "status" for a status rule."""
        return "status" if self.record.kind == Kind.STATUS else (self.record.metric or "")

    def reading(self, sample: Sample) -> float | None:
        """What this rule looks at in ``sample`` (None: the sample does not say)."""
        return reader(self.field, self.record.kind == Kind.STATUS)(sample)


Reader = Callable[[Sample], float | None]


def reader(field: str, status: bool = False) -> Reader:
    """Reads one field of a sample as a finite number (status rules: 1.0 for "error", else 0.0)."""
    if status:
        return _status_reading
    if field in _CORE:
        get = operator.attrgetter(field)
        return lambda sample: _number(get(sample))
    return lambda sample: _number(sample.extra.get(field))


def _status_reading(sample: Sample) -> float | None:
    return None if sample.status is None else float(sample.status == "error")


def _number(raw: object) -> float | None:
    if type(raw) is float:
        return raw if math.isfinite(raw) else None
    if raw is None or isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


_PHASES = {p.value: p for p in Phase}  # a dict lookup: ``Phase(value)`` is a slow call


def phase(state: AlertState | None) -> Phase:
    return Phase.OK if state is None else _PHASES[state.state]


def _move(
    rule: Rule,
    device_id: str,
    state: AlertState | None,
    to: Phase,
    now: float,
    value: float | None = None,  # None: the state's own stays
    fired: bool = False,  # ``fired_at`` becomes now
    resolved: bool = False,  # ``resolved_at`` becomes now
) -> AlertState:
    transition(phase(state), to)
    if state is None:
        return AlertState(
            rule.id, device_id, to.value, now, value, now if fired else None, now if resolved else None
        )
    # Not ``dataclasses.replace``: several times slower, and this runs for every transition.
    return AlertState(
        state.rule_id,
        state.device_id,
        to.value,
        now,
        state.value if value is None else value,
        now if fired else state.fired_at,
        now if resolved else state.resolved_at,
        state.last_notified_at,
    )


def observe(
    rule: Rule, device_id: str, state: AlertState | None, value: float, now: float
) -> AlertState | None:
    """A reading of a threshold or status rule's metric arrived."""
    current = phase(state)
    if current is Phase.OK:
        if not rule.fires(value):
            return None
        if rule.record.for_seconds <= 0:
            return _move(rule, device_id, state, Phase.FIRING, now, value=value, fired=True)
        return _move(rule, device_id, state, Phase.PENDING, now, value=value)
    assert state is not None
    if current is Phase.PENDING:
        if not rule.fires(value):
            return _move(rule, device_id, state, Phase.OK, now, value=value)
        if now - state.since >= rule.record.for_seconds:
            return _move(rule, device_id, state, Phase.FIRING, now, value=value, fired=True)
        return None
    if rule.clears(value):
        return _move(rule, device_id, state, Phase.OK, now, value=value, resolved=True)
    return None


def promote(rule: Rule, state: AlertState, now: float) -> AlertState | None:
    """The periodic tick: a pending state whose ``for`` has elapsed fires."""
    if phase(state) is Phase.PENDING and now - state.since >= rule.record.for_seconds:
        return _move(rule, state.device_id, state, Phase.FIRING, now, fired=True)
    return None


def went_offline(rule: Rule, device_id: str, state: AlertState | None, now: float) -> AlertState | None:
    """The device went offline. Offline rules start (pending, or firing for ``for`` 0); a metric
    rule's pending state is dropped (an offline device does not fire metric rules), a firing one
    stays firing (a missing sample never resolves)."""
    current = phase(state)
    if rule.kind is Kind.OFFLINE:
        if current is not Phase.OK:
            return None
        if rule.record.for_seconds <= 0:
            return _move(rule, device_id, state, Phase.FIRING, now, fired=True)
        return _move(rule, device_id, state, Phase.PENDING, now)
    return _move(rule, device_id, state, Phase.OK, now) if current is Phase.PENDING else None


def came_online(rule: Rule, device_id: str, state: AlertState | None, now: float) -> AlertState | None:
    """The device is back: an offline rule's pending state ends, a firing one resolves."""
    if rule.kind is not Kind.OFFLINE:
        return None
    current = phase(state)
    if current is Phase.PENDING:
        return _move(rule, device_id, state, Phase.OK, now)
    if current is Phase.FIRING:
        return _move(rule, device_id, state, Phase.OK, now, resolved=True)
    return None
