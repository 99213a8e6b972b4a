"""Online backup of the SQLite database: a consistent copy taken while the hub keeps writing.

``monitor-server backup DEST`` uses SQLite's backup API, so it works in the container image,
which has no ``sqlite3`` command-line tool.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor_server.settings import Settings
from monitor_server.store import is_postgres_url


def backup(db: Path, dest: Path) -> int:
    """Copy ``db`` to ``dest`` atomically (a temporary file, then a rename); returns its size."""
    if not db.is_file():
        raise FileNotFoundError(f"no database at {db}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    # A generous busy timeout: the hub's writer holds the lock for one batch at a time.
    with (
        contextlib.closing(sqlite3.connect(db, timeout=30)) as source,
        contextlib.closing(sqlite3.connect(partial)) as copy,
    ):
        source.backup(copy, pages=1024)  # in steps, so the hub's writer is never blocked for long
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise sqlite3.DatabaseError(f"the copy failed its integrity check: {verdict}")
    os.replace(partial, dest)
    return dest.stat().st_size


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="monitor-server backup", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("dest", type=Path, help="file to write (replaced atomically if it exists)")
    parser.add_argument("--db", help="database to copy (MONITOR_DB, default ./data/monitor.db)")
    args = parser.parse_args(argv)
    setting = args.db if args.db is not None else Settings().db
    if is_postgres_url(setting):
        sys.exit("monitor-server backup: copies a SQLite file; back up a PostgreSQL database with pg_dump")
    db = Path(setting)
    try:
        size = backup(db, args.dest)
    except (OSError, sqlite3.Error) as exc:
        sys.exit(f"monitor-server backup: {exc}")
    print(f"backed up {db} to {args.dest} ({size} bytes, integrity ok)")
