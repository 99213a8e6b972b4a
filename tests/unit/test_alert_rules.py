"""The alert state machine and the evaluator, pure: samples and presence in, transitions out."""

from __future__ import annotations

import dataclasses
import math
from itertools import groupby

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor_server.alerts import webhook
from monitor_server.alerts.engine import Evaluator
from monitor_server.alerts.quiet import compile_quiet
from monitor_server.alerts.rules import Phase, Rule, observe, transition
from monitor_server.alerts.service import silences_alert
from monitor_server.store import Sample
from monitor_server.store.alert_records import AlertRule, AlertState, Silence
from protocol.errors import IllegalTransition

CPU = AlertRule(1, "cpu high", "threshold", "cpu", ">", 90.0, 80.0, 2.0, "critical", {})
OFFLINE = AlertRule(2, "gone", "offline", for_seconds=5.0, selector={"tags": ["rack-1"]})
STATUS = AlertRule(3, "agent error", "status", selector={"devices": ["d1"]})


def sample(cpu: float | None = None, status: str | None = None, device: str = "d1", **extra: float) -> Sample:
    return Sample(device, 0.0, cpu, None, None, None, status, dict(extra))


def evaluator(*rules: AlertRule, online: bool = True, tags: frozenset[str] = frozenset()) -> Evaluator:
    ev = Evaluator()
    ev.load(rules, [], [("d1", online, tags)], 0.0)
    ev.changed.clear()
    return ev


def phases(ev: Evaluator) -> list[str]:
    taken = [s.state for s in ev.changed]
    ev.changed.clear()
    return taken


def test_illegal_moves_are_refused() -> None:
    """firing -> pending is not a move the lifecycle has."""
    assert transition(Phase.OK, Phase.FIRING) is Phase.FIRING
    with pytest.raises(IllegalTransition):
        transition(Phase.FIRING, Phase.PENDING)


def test_threshold_fires_after_for_and_resolves_only_below_clear() -> None:
    """cpu > 90 for 2 s fires; 85 (between clear and value) keeps it firing; 80 resolves it."""
    ev = evaluator(CPU)
    assert not ev.on_sample(sample(50), 0.0)
    assert ev.on_sample(sample(95), 1.0) and phases(ev) == ["pending"]
    assert not ev.on_sample(sample(96), 2.0)
    assert ev.tick(3.0) and phases(ev) == ["firing"]
    assert not ev.on_sample(sample(85), 4.0) and not ev.on_sample(sample(95), 5.0)
    assert not ev.on_sample(sample(None), 6.0)  # a sample without cpu says nothing
    assert ev.on_sample(sample(80), 7.0) and phases(ev) == ["ok"]
    resolved = ev.states[(1, "d1")]
    assert (resolved.fired_at, resolved.resolved_at) == (3.0, 7.0)


def test_pending_drops_back_without_firing() -> None:
    """A reading below the value before ``for`` elapsed ends the pending state: nothing fires."""
    ev = evaluator(CPU)
    ev.on_sample(sample(95), 0.0)
    assert ev.on_sample(sample(89), 1.0) and phases(ev) == ["pending", "ok"]
    assert not ev.tick(10.0)


def test_offline_device_does_not_fire_metric_rules_and_missing_samples_never_resolve() -> None:
    """Going offline drops a pending metric state, keeps a firing one; the tick ignores it offline."""
    ev = evaluator(dataclasses.replace(CPU, for_seconds=0.0), dataclasses.replace(CPU, id=9, name="x"))
    ev.on_sample(sample(95), 0.0)
    assert phases(ev) == ["firing", "pending"]
    assert ev.on_presence("d1", False, 1.0) and phases(ev) == ["ok"]
    assert not ev.tick(100.0)
    assert ev.states[(1, "d1")].state == "firing"


def test_going_offline_moves_the_offline_rules_and_the_pending_metric_ones_only() -> None:
    """Offline: the device's pending metric state drops, its firing one stays, its offline rule
    starts; another device's states are untouched. Back online: only the offline rule moves."""
    firing_cpu = dataclasses.replace(CPU, id=7, name="cpu firing", for_seconds=0.0)
    ev = Evaluator()
    devices = [("d1", True, frozenset({"rack-1"})), ("d2", True, frozenset({"rack-1"}))]
    ev.load([CPU, OFFLINE, firing_cpu], [], devices, 0.0)
    ev.on_samples([sample(95), sample(95, device="d2")], 0.0)
    ev.changed.clear()
    assert ev.on_presence("d1", False, 1.0)
    assert sorted((s.rule_id, s.device_id, s.state) for s in ev.changed) == [
        (CPU.id, "d1", "ok"),
        (OFFLINE.id, "d1", "pending"),
    ]
    ev.changed.clear()
    assert ev.states[(firing_cpu.id, "d1")].state == "firing"
    assert ev.states[(CPU.id, "d2")].state == "pending"
    assert ev.on_presence("d1", True, 2.0)
    assert [(s.rule_id, s.state) for s in ev.changed] == [(OFFLINE.id, "ok")]


def test_offline_rule_by_tag() -> None:
    """An offline rule selecting a tag: pending when the device goes, firing after ``for``, resolved back."""
    ev = evaluator(OFFLINE, tags=frozenset({"rack-1"}))
    assert ev.on_presence("d1", False, 10.0) and phases(ev) == ["pending"]
    assert not ev.tick(14.0)
    assert ev.tick(15.0) and phases(ev) == ["firing"]
    assert ev.on_presence("d1", True, 20.0) and phases(ev) == ["ok"]
    other = evaluator(OFFLINE)  # no tag: not selected
    assert not other.on_presence("d1", False, 10.0)


def test_a_device_known_only_by_its_samples_while_no_rule_reads_them_gets_a_later_rule() -> None:
    """With only an offline rule (samples skip the rules), a device that only sent samples is
    still known: an offline rule added later starts for it, and a metric rule reads its next one."""
    ev = Evaluator()
    ev.load([dataclasses.replace(OFFLINE, selector={})], [], [], 0.0)
    assert not ev.on_samples([sample(95, device="s1"), sample(96, device="s2")], 1.0)
    ev.set_rules([dataclasses.replace(OFFLINE, id=9, selector={}), CPU], 2.0)
    assert sorted((s.rule_id, s.device_id, s.state) for s in ev.changed) == [
        (9, "s1", "pending"),
        (9, "s2", "pending"),
    ]
    ev.changed.clear()
    assert ev.on_sample(sample(97, device="s1"), 3.0) and phases(ev) == ["pending"]


def test_offline_rule_starts_for_devices_already_offline() -> None:
    """A device offline when the rule is loaded is pending at once."""
    ev = evaluator(OFFLINE, online=False, tags=frozenset({"rack-1"}))
    ev.set_rules([OFFLINE, dataclasses.replace(OFFLINE, id=5, name="other")], 1.0)
    assert [s.state for s in ev.changed] == ["pending"]


def test_a_rule_firing_at_load_that_resolves_fires_again() -> None:
    """The quick check leaves out the rules active when it is compiled: one that resolves is back in it."""
    firing = AlertState(CPU.id, "d1", "firing", 0.0, 95.0, 0.0)
    ev = Evaluator()
    ev.load([dataclasses.replace(CPU, for_seconds=0.0)], [firing], [("d1", True, frozenset())], 0.0)
    for cpu, expected in ((95.0, []), (70.0, ["ok"]), (50.0, []), (99.0, ["firing"]), (85.0, [])):
        ev.on_sample(sample(cpu), 1.0)
        assert phases(ev) == expected, cpu


def test_a_pending_offline_rule_leaves_the_metric_rules_their_quick_check() -> None:
    """An offline rule pending on the device (its states are live) changes nothing for cpu: below
    the value nothing happens, above it the cpu rule goes pending as usual."""
    ev = evaluator(CPU, OFFLINE, online=False, tags=frozenset({"rack-1"}))
    ev.set_rules([CPU, OFFLINE], 0.0)
    ev.changed.clear()
    assert ev.states[(2, "d1")].state == "pending"
    ev.on_presence("d1", True, 1.0)
    ev.on_presence("d1", False, 2.0)
    assert phases(ev) == ["ok", "pending"]
    ev._online.add("d1")  # samples from a device another hub says is online: only cpu matters here
    assert not ev.on_sample(sample(50), 3.0)
    assert ev.on_sample(sample(95), 4.0) and phases(ev) == ["pending"]


def test_the_tick_fires_what_is_due_and_follows_a_changed_for() -> None:
    """Pending states fire when their ``for`` elapses, whatever order they started in; a rule whose
    ``for`` shrinks fires at the new time; a resolved state never fires."""
    ev = evaluator(CPU, dataclasses.replace(CPU, id=7, name="slow", for_seconds=30.0))
    ev.on_sample(sample(95), 0.0)
    assert phases(ev) == ["pending", "pending"]
    assert ev.tick(2.0) and [(s.rule_id, s.state) for s in ev.changed] == [(1, "firing")]
    ev.changed.clear()
    assert not ev.tick(10.0)
    ev.set_rules([CPU, dataclasses.replace(CPU, id=7, name="slow", for_seconds=5.0)], 10.0)
    ev.changed.clear()
    assert ev.tick(10.0) and [(s.rule_id, s.state) for s in ev.changed] == [(7, "firing")]
    other = evaluator(CPU)
    other.on_sample(sample(95), 0.0)
    other.on_sample(sample(50), 1.0)
    assert phases(other) == ["pending", "ok"] and not other.tick(5.0)


def test_a_flapping_pending_state_keeps_one_entry_and_fires_on_time() -> None:
    """Pending and ok in turn at every sample (a batch replaying a noisy series): the tick's queue
    holds one entry for the state, not one per start, and the last start fires ``for`` after it."""
    ev = evaluator(CPU)  # for 2 s
    for n in range(1000):
        ev.on_samples([sample(95), sample(50)], n * 0.001)
    ev.on_samples([sample(95)], 1.0)
    assert phases(ev)[-1] == "pending" and len(ev._due) == 1
    assert not ev.tick(2.5)  # the first start's entry comes due at 2.0: not this start's
    assert ev.tick(3.0) and phases(ev) == ["firing"]


def test_status_rule() -> None:
    """status error fires at once (for 0); any other status resolves; a sample without status is silent."""
    ev = evaluator(STATUS)
    assert ev.on_sample(sample(status="error"), 1.0) and phases(ev) == ["firing"]
    assert not ev.on_sample(sample(cpu=5), 2.0)
    assert ev.on_sample(sample(status="ok"), 3.0) and phases(ev) == ["ok"]


def test_extra_fields_and_cached_selection() -> None:
    """A rule on a field of ``extra``; the tags decide, and a tag change is seen."""
    temp = AlertRule(4, "hot", "threshold", "temp_max", ">=", 80.0, selector={"tags": ["hot"]})
    ev = evaluator(temp)
    assert not ev.on_sample(sample(temp_max=90.0), 1.0)
    ev.set_tags("d1", frozenset({"hot"}))
    assert ev.on_sample(sample(temp_max=90.0), 2.0) and phases(ev) == ["firing"]  # for 0
    assert not ev.on_sample(sample(temp_max=float("nan")), 3.0)


def test_a_device_no_rule_watched_is_watched_once_a_rule_selects_it() -> None:
    """A device no metric rule selects keeps a check that never stops, until the rules change."""
    ev = evaluator(OFFLINE)
    assert not ev.on_sample(sample(99), 1.0) and not ev.on_sample(sample(99), 2.0)
    ev.set_rules([OFFLINE, dataclasses.replace(CPU, for_seconds=0.0)], 3.0)
    assert ev.on_sample(sample(99), 4.0) and phases(ev) == ["firing"]


def test_rule_removed_forgets_its_states() -> None:
    """States of a deleted rule are dropped and their keys returned."""
    ev = evaluator(CPU)
    ev.on_sample(sample(95), 0.0)
    assert ev.set_rules([], 1.0) == [(1, "d1")] and ev.states == {}


def test_alertmanager_body() -> None:
    """Version 4 body: status, labels with alertname/device/severity, zero endsAt while firing."""
    firing = AlertState(1, "d1", "firing", 3.0, 95.0, fired_at=3.0)
    resolved = AlertState(1, "d2", "ok", 9.0, 70.0, fired_at=3.0, resolved_at=9.0, last_notified_at=4.0)
    alerts = [webhook.Alert(CPU, firing, "firing"), webhook.Alert(CPU, resolved, "resolved")]
    body = webhook.body("ops", alerts, "http://hub:8000")
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["commonLabels"] == {
        "alertname": "cpu high",
        "severity": "critical",
        "kind": "threshold",
        "metric": "cpu",
    }
    first, second = body["alerts"]
    assert first["labels"]["device"] == "d1" and first["endsAt"] == webhook.ZERO_TIME
    assert second["status"] == "resolved" and second["endsAt"] == "1970-01-01T00:00:09Z"
    assert first["fingerprint"] != second["fingerprint"] and len(first["fingerprint"]) == 16
    only_resolved = webhook.body("ops", alerts[1:], "http://hub:8000")
    assert only_resolved["status"] == "resolved"


def test_silence_matching() -> None:
    """Every matcher given must match; an ended silence holds nothing."""
    state = AlertState(1, "d1", "firing", 0.0, fired_at=0.0)
    assert silences_alert(Silence(1, {"device": "d1"}, 100.0), CPU, state, 50.0)
    assert silences_alert(Silence(1, {"device": "d1", "rule": "cpu high"}, 100.0), CPU, state, 50.0)
    assert not silences_alert(Silence(1, {"device": "d1", "rule": "other"}, 100.0), CPU, state, 50.0)
    assert not silences_alert(Silence(1, {"device": "d1"}, 100.0), CPU, state, 100.0)


NUMBERS = st.one_of(
    st.integers(-7, 7),
    st.floats(-7, 7),
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, None, "9", [1]]),
)
THRESHOLDS = st.tuples(
    st.sampled_from(["cpu", "load_1"]),
    st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    st.integers(-5, 5),
    st.integers(-5, 5),
    st.sampled_from([0.0, 1.0]),
)


@given(st.lists(THRESHOLDS, min_size=1, max_size=8), NUMBERS, NUMBERS)
def test_the_compiled_quick_check_is_quiet_only_when_no_rule_fires(
    specs: list[tuple[str, str, int, int, float]], cpu: object, load: object
) -> None:
    """Quiet at a sample exactly when no rule reads a finite number there that fires it (a value
    that is not one may say "look closer", never "quiet" where a rule fires); where it is not, the
    mask names every field with a rule that fires."""
    rules = [
        Rule.compile(AlertRule(n, f"r{n}", "threshold", metric, op, float(v)))
        for n, (metric, op, v, _, _) in enumerate(specs, 1)
    ]
    by_field: dict[str, list[tuple[str, float]]] = {}
    for rule in rules:
        by_field.setdefault(rule.field, []).append((rule.record.op or "", rule.record.value or 0.0))
    readings = tuple((f, f == "cpu", False, tuple(sorted(p))) for f, p in sorted(by_field.items()))
    reading = Sample("d1", 0.0, cpu, None, None, None, None, {"load_1": load})  # type: ignore[arg-type]
    fires = any((v := rule.reading(reading)) is not None and rule.fires(v) for rule in rules)
    found = compile_quiet(readings)(iter([reading]))
    quiet = found is None
    assert not (quiet and fires)
    if all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (cpu, load)):
        assert quiet == (not fires)
    if found is not None:
        assert found[0] is reading
        fields = [field for field, _, _, _ in readings]
        for rule in rules:
            if (v := rule.reading(reading)) is not None and rule.fires(v):
                assert found[1] >> fields.index(rule.field) & 1, f"{rule.field} fires, not in the mask"


@settings(max_examples=150)
@given(
    st.lists(THRESHOLDS, min_size=1, max_size=6),
    st.lists(st.tuples(NUMBERS, NUMBERS, st.sampled_from([None, "ok", "error"])), max_size=25),
)
def test_the_evaluator_moves_as_each_rule_observed_alone_would(
    specs: list[tuple[str, str, int, int, float]], stream: list[tuple[object, object, str | None]]
) -> None:
    """Quick checks and all: the same transitions as observing every rule at every sample."""
    records = [
        AlertRule(n, f"r{n}", "threshold", metric, op, float(v), float(c), wait)
        for n, (metric, op, v, c, wait) in enumerate(specs, 10)  # STATUS is rule 3
    ]
    records.append(STATUS)
    ev = evaluator(*records)
    rules = [Rule.compile(record) for record in records]
    states: dict[tuple[int, str], AlertState] = {}
    for n, (cpu, load, status) in enumerate(stream):
        now = n * 0.5
        reading = Sample("d1", now, cpu, None, None, None, status, {"load_1": load})  # type: ignore[arg-type]
        ev.on_sample(reading, now)
        expected = []
        for rule in rules:
            value = rule.reading(reading)
            moved = None if value is None else observe(rule, "d1", states.get((rule.id, "d1")), value, now)
            if moved is not None:
                states[moved.key] = moved
                expected.append(moved)
        assert sorted(ev.changed, key=lambda s: s.rule_id) == sorted(expected, key=lambda s: s.rule_id)
        ev.changed.clear()


@settings(max_examples=150)
@given(
    st.lists(THRESHOLDS, min_size=1, max_size=6),
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["d1", "d2"]), NUMBERS, NUMBERS, st.sampled_from([None, "ok", "error"])
            ),
            max_size=8,
        ),
        max_size=8,
    ),
)
def test_batches_move_as_each_sample_observed_alone_would(
    specs: list[tuple[str, str, int, int, float]], batches: list[list[tuple[str, object, object, str | None]]]
) -> None:
    """``on_samples`` (a device's run of samples evaluated together, the indexes updated at its
    end): the same (rule, device) pairs move, to the same newest state, as when every rule observes
    every sample; each pair once per run, the newest last."""
    records = [
        AlertRule(n, f"r{n}", "threshold", metric, op, float(v), float(c), wait)
        for n, (metric, op, v, c, wait) in enumerate(specs, 10)
    ]
    records.append(dataclasses.replace(STATUS, for_seconds=0.5))  # d1 only; pending, then due
    ev = Evaluator()
    ev.load(records, [], [("d1", True, frozenset()), ("d2", True, frozenset())], 0.0)
    ev.changed.clear()
    rules = [Rule.compile(record) for record in records]
    states: dict[tuple[int, str], AlertState] = {}
    for n, batch in enumerate(batches):
        now = n * 0.5
        readings = [
            Sample(d, now, cpu, None, None, None, status, {"load_1": load})  # type: ignore[arg-type]
            for d, cpu, load, status in batch
        ]
        assert ev.on_samples(readings, now) == bool(ev.changed)
        expected: dict[tuple[int, str], AlertState] = {}
        for reading in readings:
            for rule in rules:
                if not rule.selects(reading.device_id, frozenset()):
                    continue
                value = rule.reading(reading)
                key = (rule.id, reading.device_id)
                moved = (
                    None if value is None else observe(rule, reading.device_id, states.get(key), value, now)
                )
                if moved is not None:
                    states[key] = expected[key] = moved
        runs = len(list(groupby(readings, key=lambda s: s.device_id)))
        assert len(ev.changed) <= len(expected) * runs
        assert {s.key: s for s in ev.changed} == expected  # the newest of each pair is last
        assert {key: ev.states[key] for key in states} == states
        ev.changed.clear()


def test_a_notified_alert_resolves_owing_its_resolved_notification() -> None:
    """``mark_notified`` reaches the state the next sample resolves (the evaluator's index of active
    states too): the resolved state remembers the firing notification and owes the resolved one."""
    ev = evaluator(dataclasses.replace(CPU, for_seconds=0.0))
    assert ev.on_samples([sample(95)], 1.0) and phases(ev) == ["firing"]
    notified = ev.mark_notified((CPU.id, "d1"), 2.0)
    assert notified is not None and notified.owes() is None
    assert ev.mark_notified((CPU.id, "gone"), 2.0) is None
    assert not ev.on_samples([sample(96), sample(85)], 3.0)  # still firing: not below the clear value
    assert ev.on_samples([sample(70)], 4.0)
    (resolved,) = ev.changed
    assert resolved.state == "ok" and resolved.last_notified_at == 2.0 and resolved.owes() == "resolved"
