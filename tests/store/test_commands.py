"""The command lifecycle in the store (DESIGN §5): rows change only through the state machine."""

from __future__ import annotations

import pytest

from monitor_server.store import Store
from protocol.commands import CommandState
from protocol.errors import Conflict, NotFound

T0 = 1_800_000_000.0


async def test_create_and_get(store: Store) -> None:
    """A new command is pending with its args, times and expiry; get finds it only for its device."""
    command, created = await store.create_command("d1", "shell", {"cmd": "uptime"}, T0, expires_at=T0 + 60)
    assert created and command.state is CommandState.PENDING and command.id > 0
    assert (command.args, command.created_at, command.expires_at) == ({"cmd": "uptime"}, T0, T0 + 60)
    assert await store.get_command("d1", command.id) == command
    assert await store.get_command("d2", command.id) is None
    assert await store.get_command("d1", command.id + 1000) is None


async def test_idempotency_key_returns_the_first_command_or_conflicts(store: Store) -> None:
    """The same key and body gives the stored command back; a different body is a Conflict."""
    first, created = await store.create_command("d1", "ping", {"a": 1, "b": [2]}, T0, idempotency_key="k")
    again, created_again = await store.create_command("d1", "ping", {"b": [2], "a": 1}, T0 + 5, "k")
    assert created and not created_again and again == first
    with pytest.raises(Conflict, match="different body"):
        await store.create_command("d1", "ping", {"a": 2}, T0, idempotency_key="k")
    with pytest.raises(Conflict):
        await store.create_command("d1", "reboot", {"a": 1, "b": [2]}, T0, idempotency_key="k")
    other, created_other = await store.create_command("d2", "ping", None, T0, idempotency_key="k")
    assert created_other and other.id != first.id
    assert [c.device_id for c in await store.commands_with_key("k")] == ["d1", "d2"]
    assert await store.commands_with_key("unknown") == []
    assert len(await store.list_commands("d1", 10)) == 1


async def test_list_commands_newest_first_with_limit(store: Store) -> None:
    """list_commands gives a device's commands newest first, at most ``limit``."""
    ids = [(await store.create_command("d1", f"c{i}", None, T0 + i))[0].id for i in range(4)]
    await store.create_command("d2", "other", None, T0)
    assert ids == sorted(ids)
    assert [c.id for c in await store.list_commands("d1", 10)] == ids[::-1]
    assert [c.id for c in await store.list_commands("d1", 2)] == ids[:1:-1]


async def test_open_commands_after_id_limit_and_expiry(store: Store) -> None:
    """Open commands oldest first, above ``after_id``, at most ``limit``, none expired at ``at``."""
    ids = [(await store.create_command("d1", f"c{i}", None, T0))[0].id for i in range(4)]
    due, _ = await store.create_command("d1", "due", None, T0, expires_at=T0 + 10)
    await store.ack_command("d1", ids[1], True, "ok", None, T0 + 1)
    await store.mark_delivered([ids[2]], T0 + 1)
    assert [c.id for c in await store.open_commands("d1")] == [ids[0], ids[2], ids[3], due.id]
    assert [c.id for c in await store.open_commands("d1", after_id=ids[2])] == [ids[3], due.id]
    assert [c.id for c in await store.open_commands("d1", limit=2)] == [ids[0], ids[2]]
    assert [c.id for c in await store.open_commands("d1", at=T0 + 9)][-1] == due.id
    assert due.id not in [c.id for c in await store.open_commands("d1", at=T0 + 10)]
    assert await store.open_commands("d2") == []


async def test_expire_commands_returns_exactly_those_it_changed(store: Store) -> None:
    """Open commands past their expiry become expired (of one device, or all), by id; once."""
    a, _ = await store.create_command("d1", "a", None, T0, expires_at=T0 + 5)
    b, _ = await store.create_command("d2", "b", None, T0, expires_at=T0 + 5)
    c, _ = await store.create_command("d1", "c", None, T0, expires_at=T0 + 50)
    acked, _ = await store.create_command("d1", "acked", None, T0, expires_at=T0 + 5)
    await store.ack_command("d1", acked.id, True, "", None, T0 + 1)
    assert await store.expire_commands(T0 + 4) == []
    only_d1 = await store.expire_commands(T0 + 5, device_id="d1")
    assert [(x.id, x.state) for x in only_d1] == [(a.id, CommandState.EXPIRED)]
    assert [x.id for x in await store.expire_commands(T0 + 100)] == [b.id, c.id]
    assert await store.expire_commands(T0 + 100) == []
    stored = await store.get_command("d1", acked.id)
    assert stored is not None and stored.state is CommandState.ACKED


async def test_mark_delivered_returns_only_rows_it_changed(store: Store) -> None:
    """A command delivered before at the same clock value is not reported as changed again."""
    first, _ = await store.create_command("d1", "a", None, 1.0)
    second, _ = await store.create_command("d1", "b", None, 1.0)
    assert [c.id for c in await store.mark_delivered([first.id], 5.0)] == [first.id]
    changed = await store.mark_delivered([second.id, first.id, second.id], 5.0)
    assert [(c.id, c.state, c.delivered_at) for c in changed] == [(second.id, CommandState.DELIVERED, 5.0)]
    assert await store.mark_delivered([first.id, second.id], 6.0) == []
    assert await store.mark_delivered([], 6.0) == []
    stored = await store.get_command("d1", first.id)
    assert stored is not None and stored.delivered_at == 5.0


async def test_first_ack_wins(store: Store) -> None:
    """The first ack is stored whole; a later one changes nothing and says so; unknown is NotFound."""
    command, _ = await store.create_command("d1", "ping", None, T0)
    await store.mark_delivered([command.id], T0 + 1)
    acked, won = await store.ack_command("d1", command.id, True, "pong", {"rtt": 3}, T0 + 2)
    assert won and acked.state is CommandState.ACKED
    assert (acked.success, acked.message, acked.result, acked.acked_at) == (True, "pong", {"rtt": 3}, T0 + 2)
    assert acked.delivered_at == T0 + 1
    again, won_again = await store.ack_command("d1", command.id, False, "late", None, T0 + 3)
    assert not won_again and again == acked
    with pytest.raises(NotFound):
        await store.ack_command("d1", command.id + 1000, True, "", None, T0)
    with pytest.raises(NotFound):
        await store.ack_command("d2", command.id, True, "", None, T0)


async def test_cancel_open_command_then_again_then_conflicts(store: Store) -> None:
    """Cancel moves an open command; cancelling again returns it; an acked one is a Conflict."""
    command, _ = await store.create_command("d1", "ping", None, T0)
    cancelled = await store.cancel_command("d1", command.id, T0 + 1)
    assert cancelled.state is CommandState.CANCELLED and cancelled.cancelled_at == T0 + 1
    assert await store.cancel_command("d1", command.id, T0 + 2) == cancelled
    late_ack, won = await store.ack_command("d1", command.id, True, "", None, T0 + 3)
    assert not won and late_ack == cancelled
    done, _ = await store.create_command("d1", "ping", None, T0)
    await store.ack_command("d1", done.id, False, "failed", None, T0 + 1)
    with pytest.raises(Conflict, match="already acked"):
        await store.cancel_command("d1", done.id, T0 + 2)
    with pytest.raises(NotFound):
        await store.cancel_command("d1", done.id + 1000, T0)
    stored = await store.get_command("d1", done.id)
    assert stored is not None and stored.state is CommandState.ACKED and stored.cancelled_at is None
