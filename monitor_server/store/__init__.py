"""Storage backends behind one interface, chosen by the database setting."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    "is_postgres_url",
    "open_store",
    "shown",
]


def is_postgres_url(db: Path | str) -> bool:
    """Whether the database setting names a PostgreSQL server rather than a SQLite file."""
    return str(db).startswith(("postgres://", "postgresql://"))


def shown(db: Path | str) -> str:
    """The database setting as it may be logged: a URL's password replaced by ``***``."""
    parts = urlsplit(str(db))
    if not is_postgres_url(db) or parts.password is None:
        return str(db)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(db: Path | str) -> Store:
    """A SQLite file path (or ``sqlite:///path``) gives the embedded store, a ``postgresql://`` URL
    the store several hubs share (DESIGN §13)."""
    text = str(db)
    if is_postgres_url(text):
        from monitor_server.store.postgres import PostgresStore  # asyncpg only when it is used

        return PostgresStore(text)
    return SQLiteStore(Path(text.removeprefix("sqlite:///")))
