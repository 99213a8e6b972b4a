"""Stored rows into records, the same for both backends (an SQLite row and an asyncpg record alike).

JSON columns are text on both; flags are integers in SQLite and booleans in PostgreSQL, so they go
through ``bool`` here.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from monitor_server.store.records import Command, Device, Sample
from protocol import CommandState


class Row(Protocol):
    def __getitem__(self, key: Any, /) -> Any: ...


def dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def sample_of(r: Row) -> Sample:
    return Sample(r[0], r[1], r[2], r[3], r[4], r[5], r[6], loads(r[7]) or {})


def device_of(r: Row) -> Device:
    return Device(
        device_id=r[0],
        hostname=r[1],
        agent_version=r[2],
        platform=r[3],
        status=r[4],
        last_error=r[5],
        first_seen=r[6],
        last_seen=r[7],
        last_payload=loads(r[8]),
        online=bool(r[9]),
        connection=r[10],
        presence_reason=r[11],
        presence_since=r[12],
        name=r[13],
        tags=tuple(loads(r[14]) or ()),
        agent_tags=tuple(loads(r[15]) or ()),
        commands=None if r[16] is None else tuple(loads(r[16])),
        hub_id=r[17],
    )


def tags_of(r: Row) -> tuple[str, frozenset[str]]:
    """A device's id and all its tags, from ``device_id, tags, agent_tags``."""
    return r[0], frozenset((*(loads(r[1]) or ()), *(loads(r[2]) or ())))


def command_of(r: Row) -> Command:
    return Command(
        id=r[0],
        device_id=r[1],
        command=r[2],
        args=loads(r[3]),
        state=CommandState(r[4]),
        created_at=r[5],
        delivered_at=r[6],
        acked_at=r[7],
        cancelled_at=r[8],
        success=None if r[9] is None else bool(r[9]),
        message=r[10],
        result=loads(r[11]),
        idempotency_key=r[12],
        expires_at=r[13],
    )


def same_body(existing: Command, command: str, args: dict[str, Any] | None) -> bool:
    """Whether a repeated enqueue asks for the same command: same name, same args as JSON."""
    return existing.command == command and _canonical(existing.args) == _canonical(args)


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
