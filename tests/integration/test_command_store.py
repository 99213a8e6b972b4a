"""Command races on the SQLite store and over REST (the store's own tests: tests/store/)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_server.store import Command, SQLiteStore
from monitor_server.store import sqlite as sqlite_store
from protocol.commands import CommandState
from protocol.errors import Conflict


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store in tmp_path."""
    opened = SQLiteStore(tmp_path / "monitor.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_cancel_losing_race_to_ack_keeps_ack_and_conflicts(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that read the command open but finds it acked at update time raises Conflict, ack kept."""
    command, _ = await store.create_command("d1", "ping", None, 1.0)
    await store.ack_command("d1", command.id, True, "pong", {"rtt": 3}, 2.0)
    real_read = sqlite_store._one_command

    def stale_read(db: sqlite3.Connection, where: str, params: Sequence[Any]) -> Command | None:
        """The first read still sees the command pending, as if the ack landed just after it."""
        monkeypatch.setattr(sqlite_store, "_one_command", real_read)
        found = real_read(db, where, params)
        return None if found is None else dataclasses.replace(found, state=CommandState.PENDING)

    monkeypatch.setattr(sqlite_store, "_one_command", stale_read)
    with pytest.raises(Conflict, match="already acked"):
        await store.cancel_command("d1", command.id, 3.0)
    stored = await store.get_command("d1", command.id)
    assert stored is not None and stored.state is CommandState.ACKED
    assert (stored.success, stored.message, stored.result, stored.cancelled_at) == (
        True,
        "pong",
        {"rtt": 3},
        None,
    )


async def test_cancel_racing_ack_over_rest(api: httpx.AsyncClient) -> None:
    """An ack and a cancel sent together: whichever wins is stored whole; a won ack makes cancel 409."""
    ids = [
        (await api.post("/devices/race/commands", json={"command": "ping"})).json()["id"] for _ in range(10)
    ]

    async def both(cid: int) -> tuple[httpx.Response, httpx.Response]:
        ack = api.post(f"/devices/race/commands/{cid}/ack", json={"success": True, "message": "pong"})
        cancel = api.delete(f"/devices/race/commands/{cid}")
        if cid % 2:  # half the pairs send the cancel first, so both orders occur
            cancelled, acked = await asyncio.gather(cancel, ack)
        else:
            acked, cancelled = await asyncio.gather(ack, cancel)
        return acked, cancelled

    results = await asyncio.gather(*(both(cid) for cid in ids))
    for cid, (ack, cancel) in zip(ids, results, strict=True):
        stored = (await api.get(f"/devices/race/commands/{cid}")).json()
        assert ack.status_code == 200 and ack.json()["status"] == stored["status"]
        if stored["status"] == "acked":
            assert cancel.status_code == 409 and "acked" in cancel.json()["detail"]
            assert (
                stored["success"] is True and stored["message"] == "pong" and stored["cancelled_at"] is None
            )
        else:
            assert stored["status"] == "cancelled" and cancel.status_code == 200
            assert stored["success"] is None and stored["acked_at"] is None
