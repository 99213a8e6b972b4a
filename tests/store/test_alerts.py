"""The alert tables of the store (DESIGN §11), on every backend the ``store`` fixture gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from monitor_server.store import Store, open_store, pg_schema, schema
from monitor_server.store.alert_records import AlertRule, AlertState, Notifier, Silence
from protocol.errors import Conflict
from tests.pg import pg_schema as fresh_pg_schema

CPU = AlertRule(
    0, "cpu high", "threshold", "cpu", ">", 90.0, 80.0, 2.0, "critical", {"tags": ["web"]}, 10.0, 10.0
)


async def test_rules_round_trip(store: Store) -> None:
    """A rule comes back as stored, with an id; names are unique; update and delete by id."""
    created = await store.create_alert_rule(CPU)
    offline = await store.create_alert_rule(AlertRule(0, "gone", "offline", for_seconds=60.0))
    assert created.id > 0 and offline.id > created.id
    assert await store.get_alert_rule(created.id) == created
    assert await store.list_alert_rules() == [created, offline]
    with pytest.raises(Conflict):
        await store.create_alert_rule(CPU)
    with pytest.raises(Conflict):
        await store.update_alert_rule(dataclasses.replace(offline, name="cpu high"))
    changed = dataclasses.replace(created, value=95.0, updated_at=20.0)
    assert await store.update_alert_rule(changed) == changed
    assert await store.get_alert_rule(created.id) == changed
    assert await store.update_alert_rule(dataclasses.replace(changed, id=9999, name="x")) is None
    assert await store.get_alert_rule(2**63 - 1) is None
    assert await store.delete_alert_rule(created.id)
    assert not await store.delete_alert_rule(created.id)
    assert await store.list_alert_rules() == [offline]


async def test_a_rule_keeps_the_notifiers_it_routes_to(store: Store) -> None:
    """``notifiers`` (ids) are stored, changed and read back; none means every notifier."""
    ops = await store.create_notifier(Notifier(0, "ops", "webhook", "http://127.0.0.1:1/a", {}, 1.0))
    pager = await store.create_notifier(Notifier(0, "pager", "webhook", "http://127.0.0.1:1/b", {}, 1.0))
    routed = await store.create_alert_rule(dataclasses.replace(CPU, notifiers=[pager.id, ops.id]))
    everyone = await store.create_alert_rule(AlertRule(0, "gone", "offline", for_seconds=60.0))
    assert (await store.get_alert_rule(routed.id)) == routed and routed.notifiers == [pager.id, ops.id]
    assert everyone.notifiers == [] and (await store.get_alert_rule(everyone.id)) == everyone
    assert routed.routes_to(pager.id) and not routed.routes_to(9) and everyone.routes_to(9)
    narrowed = dataclasses.replace(routed, notifiers=[ops.id], updated_at=30.0)
    assert await store.update_alert_rule(narrowed) == narrowed
    widened = dataclasses.replace(everyone, notifiers=[pager.id])
    assert await store.update_alert_rule(widened) == widened
    assert await store.list_alert_rules() == [narrowed, widened]
    assert narrowed.to_json()["notifiers"] == [ops.id]


async def test_active_states_are_the_pending_and_firing_ones(store: Store) -> None:
    """list_active_alert_states leaves out ok states (GET /alerts with several hubs reads it)."""
    rule = await store.create_alert_rule(CPU)
    pending = AlertState(rule.id, "b-2", "pending", 100.0, 95.0)
    firing = AlertState(rule.id, "a-1", "firing", 100.0, 95.0, fired_at=100.0)
    ok = AlertState(rule.id, "c-3", "ok", 100.0, 10.0, fired_at=90.0, resolved_at=100.0)
    await store.save_alert_states([pending, firing, ok])
    assert await store.list_active_alert_states() == [firing, pending]
    await store.save_alert_states([dataclasses.replace(firing, state="ok", resolved_at=110.0)])
    assert await store.list_active_alert_states() == [pending]


async def test_a_removed_devices_states_are_deleted(store: Store) -> None:
    """delete_device_alert_states drops every rule's state of that device, and no other's."""
    cpu = await store.create_alert_rule(CPU)
    gone = await store.create_alert_rule(AlertRule(0, "gone", "offline", for_seconds=60.0))
    kept = AlertState(cpu.id, "web-2", "firing", 100.0, 95.0, fired_at=100.0)
    await store.save_alert_states(
        [
            AlertState(cpu.id, "web-1", "firing", 100.0, 95.0, fired_at=100.0),
            AlertState(gone.id, "web-1", "pending", 100.0),
            kept,
        ]
    )
    assert await store.delete_device_alert_states("web-1") == 2
    assert await store.delete_device_alert_states("web-1") == 0
    assert await store.list_alert_states() == [kept]


async def test_states_upsert_and_go_with_their_rule(store: Store) -> None:
    """States are inserted then replaced per (rule, device), and deleted with their rule."""
    rule = await store.create_alert_rule(CPU)
    pending = AlertState(rule.id, "web-1", "pending", 100.0, 95.0)
    await store.save_alert_states([pending, AlertState(rule.id, "web-2", "ok", 100.0)])
    firing = dataclasses.replace(pending, state="firing", fired_at=102.0)
    await store.save_alert_states([firing])
    assert await store.list_alert_states() == [firing, AlertState(rule.id, "web-2", "ok", 100.0)]
    await store.delete_alert_states([(rule.id, "web-2")])
    assert await store.list_alert_states() == [firing]
    await store.delete_alert_rule(rule.id)
    assert await store.list_alert_states() == []


async def test_notifications_and_the_state_they_settle_commit_together(store: Store) -> None:
    """enqueue_notifications writes outbox rows and the notified states at once; delivery in id order."""
    rule = await store.create_alert_rule(CPU)
    hook = await store.create_notifier(Notifier(0, "ops", "webhook", "http://127.0.0.1:1/x", {"A": "b"}, 5.0))
    firing = AlertState(rule.id, "web-1", "firing", 100.0, 95.0, fired_at=102.0)
    assert firing.owes() == "firing"
    notified = dataclasses.replace(firing, last_notified_at=103.0)
    ids = await store.enqueue_notifications([(hook.id, {"n": 1}), (hook.id, {"n": 2})], [notified], 103.0)
    assert len(ids) == 2 and ids[0] < ids[1]
    assert await store.list_alert_states() == [notified] and notified.owes() is None
    pending = await store.pending_notifications()
    assert [(p.id, p.notifier_id, p.body, p.attempts) for p in pending] == [
        (ids[0], hook.id, {"n": 1}, 0),
        (ids[1], hook.id, {"n": 2}, 0),
    ]
    await store.mark_notification_failed(ids[0], "connection refused", 110.0)
    failed = (await store.pending_notifications())[0]
    assert (failed.attempts, failed.last_error, failed.next_attempt_at) == (1, "connection refused", 110.0)
    await store.mark_notification_delivered(ids[0], 111.0)
    assert [p.id for p in await store.pending_notifications()] == [ids[1]]
    assert await store.delete_delivered_notifications(112.0) == 1
    assert await store.delete_notifier(hook.id)
    assert await store.pending_notifications() == []
    assert not await store.delete_notifier(hook.id)


async def test_notifiers_keep_url_and_headers_and_redact_them(store: Store) -> None:
    """A notifier is stored whole; its JSON shows scheme and host only and header names only."""
    secret = "https://user:pw@hooks.example.com:8443/T000/B000/XXXX?token=s3cret"
    hook = await store.create_notifier(Notifier(0, "slack", "webhook", secret, {"Authorization": "x"}, 5.0))
    assert await store.list_notifiers() == [hook]
    shown = hook.to_json()
    assert shown["url"] == "https://hooks.example.com:8443/..." and shown["headers"] == ["Authorization"]
    assert "s3cret" not in str(shown) and "pw" not in str(shown)
    with pytest.raises(Conflict):
        await store.create_notifier(Notifier(0, "slack", "webhook", "http://x", {}, 6.0))


async def test_silences_listed_while_active(store: Store) -> None:
    """Silences come back with their matchers; ``active_at`` leaves out those ended."""
    old = await store.create_silence(Silence(0, {"device": "web-1"}, 50.0, "done", "alice", 1.0))
    live = await store.create_silence(Silence(0, {"rule": "cpu high"}, 500.0, "deploy", "bob", 2.0))
    assert await store.list_silences() == [old, live]
    assert await store.list_silences(active_at=100.0) == [live]
    assert await store.delete_silence(old.id)
    assert not await store.delete_silence(old.id)
    assert await store.list_silences() == [live]


def test_owed_notifications() -> None:
    """A state owes firing until notified after it fired, and resolved only if its firing went out."""
    firing = AlertState(1, "d", "firing", 0.0, fired_at=10.0)
    assert firing.owes() == "firing"
    assert dataclasses.replace(firing, last_notified_at=11.0).owes() is None
    resolved = AlertState(1, "d", "ok", 20.0, fired_at=10.0, resolved_at=20.0, last_notified_at=11.0)
    assert resolved.owes() == "resolved"
    assert dataclasses.replace(resolved, last_notified_at=21.0).owes() is None
    assert dataclasses.replace(resolved, last_notified_at=None).owes() is None  # silenced throughout


_OLD_RULE = (
    "INSERT INTO alert_rules (name, kind, metric, op, value, clear_value, for_seconds, severity, selector,"
    " created_at, updated_at) VALUES ('cpu high', 'threshold', 'cpu', '>', 90, 80, 2, 'critical', '{}', 1, 1)"
)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_rules_stored_before_routing_go_to_every_notifier(backend: str, tmp_path: Path) -> None:
    """A database from before the routing migration: its rules come back with ``notifiers`` [] (all),
    and its firing states are listed as active."""
    if backend == "sqlite":
        path = tmp_path / "old.db"
        before = schema.MIGRATIONS.index(schema.ALERT_ROUTING_DDL)
        async with aiosqlite.connect(path, isolation_level=None) as old:
            for number, script in enumerate(schema.MIGRATIONS[:before], start=1):
                await old.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
            await old.execute(_OLD_RULE)
            await old.execute(
                "INSERT INTO alert_states (rule_id, device_id, state, since) VALUES (1, 'a', 'firing', 5)"
            )
        await _check_upgraded(open_store(path))
        return
    async with fresh_pg_schema() as url:
        before = pg_schema.MIGRATIONS.index(pg_schema.ALERT_ROUTING_DDL)
        conn = await asyncpg.connect(url)
        try:
            for number, script in enumerate(pg_schema.MIGRATIONS[:before], start=1):
                assert await pg_schema._apply(conn, number, script)
            await conn.execute(_OLD_RULE)
            await conn.execute(
                "INSERT INTO alert_states (rule_id, device_id, state, since) VALUES (1, 'a', 'firing', 5)"
            )
        finally:
            await conn.close()
        await _check_upgraded(open_store(url))


async def _check_upgraded(store: Store) -> None:
    await store.open()
    try:
        (rule,) = await store.list_alert_rules()
        assert (rule.name, rule.notifiers, rule.routes_to(7)) == ("cpu high", [], True)
        assert [s.device_id for s in await store.list_active_alert_states()] == ["a"]
    finally:
        await store.close()
