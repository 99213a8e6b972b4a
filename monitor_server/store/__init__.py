"""Storage backends behind one interface, chosen by the database setting."""

from __future__ import annotations

from pathlib import Path

from monitor_server.store.base import Store
from monitor_server.store.records import Command, Device, PresenceEvent, RemovedDevice, Sample
from monitor_server.store.sqlite import SQLiteStore

__all__ = [
    "Command",
    "Device",
    "PresenceEvent",
    "RemovedDevice",
    "SQLiteStore",
    "Sample",
    "Store",
    "open_store",
]


def open_store(db: Path | str) -> Store:
    """A SQLite file path (or ``sqlite:///path``) gives the embedded store."""
    text = str(db)
    if text.startswith(("postgres://", "postgresql://")):
        raise ValueError("PostgreSQL storage is not available in this version; use a SQLite path")
    return SQLiteStore(Path(text.removeprefix("sqlite:///")))
