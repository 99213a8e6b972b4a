"""The alert state machine and the evaluator, pure: samples and presence in, transitions out."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor_server.alerts import webhook
from monitor_server.alerts.engine import Evaluator
from monitor_server.alerts.rules import Phase, Rule, quiet_test, transition
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


def test_offline_rule_by_tag() -> None:
    """An offline rule selecting a tag: pending when the device goes, firing after ``for``, resolved back."""
    ev = evaluator(OFFLINE, tags=frozenset({"rack-1"}))
    assert ev.on_presence("d1", False, 10.0) and phases(ev) == ["pending"]
    assert not ev.tick(14.0)
    assert ev.tick(15.0) and phases(ev) == ["firing"]
    assert ev.on_presence("d1", True, 20.0) and phases(ev) == ["ok"]
    other = evaluator(OFFLINE)  # no tag: not selected
    assert not other.on_presence("d1", False, 10.0)


def test_offline_rule_starts_for_devices_already_offline() -> None:
    """A device offline when the rule is loaded is pending at once."""
    ev = evaluator(OFFLINE, online=False, tags=frozenset({"rack-1"}))
    ev.set_rules([OFFLINE, dataclasses.replace(OFFLINE, id=5, name="other")], 1.0)
    assert [s.state for s in ev.changed] == ["pending"]


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


@given(
    st.lists(
        st.tuples(st.sampled_from([">", ">=", "<", "<=", "==", "!="]), st.integers(-5, 5)),
        min_size=1,
        max_size=8,
    ),
    st.integers(-7, 7),
)
def test_quiet_group_agrees_with_each_rule(ops: list[tuple[str, int]], value: int) -> None:
    """A group is quiet at a value exactly when none of its rules fires there."""
    group = tuple(
        Rule.compile(AlertRule(n, f"r{n}", "threshold", "cpu", op, float(v)))
        for n, (op, v) in enumerate(ops, 1)
    )
    assert quiet_test(group)(float(value)) == (not any(rule.fires(float(value)) for rule in group))
