"""Samples waiting for the hub: bounded, oldest first out, oldest dropped first when full.

Two backends behind one ``Spool`` protocol: SQLite in the state folder for the daemon
(survives restarts), memory for simulated agents and tests.
"""

from __future__ import annotations

import bisect
import itertools
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from protocol.plain import decode_json, encode_json

Sample = dict[str, Any]
NONE: frozenset[int] = frozenset()


class Spool(Protocol):
    """Samples kept while the hub cannot take them."""

    @property
    def dropped(self) -> int:
        """How many samples were discarded because the spool was full (ever, for this agent)."""

    def __len__(self) -> int: ...

    def extend(self, samples: Iterable[Sample]) -> None:
        """Keep these samples; drop the oldest ones if over the limit."""

    def peek(self, limit: int, exclude: Collection[int] = NONE) -> list[tuple[int, Sample]]:
        """Up to ``limit`` oldest samples (by ``ts``) with keys for ``remove``, skipping ``exclude``."""

    def remove(self, keys: Iterable[int]) -> None:
        """Forget samples the hub now has."""

    def close(self) -> None: ...


def _ts(sample: Sample) -> float:
    value = sample.get("ts")
    return float(value) if isinstance(value, int | float) else 0.0


class MemorySpool:
    """An in-memory spool, sorted by timestamp."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self._rows: list[tuple[float, int, Sample]] = []
        self._seq = itertools.count()
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return len(self._rows)

    def extend(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            bisect.insort(self._rows, (_ts(sample), next(self._seq), sample), key=lambda r: r[:2])
        excess = len(self._rows) - self.max_samples
        if excess > 0:
            del self._rows[:excess]
            self._dropped += excess

    def peek(self, limit: int, exclude: Collection[int] = NONE) -> list[tuple[int, Sample]]:
        rows = (row for row in self._rows if row[1] not in exclude)
        return [(seq, sample) for _, seq, sample in itertools.islice(rows, limit)]

    def remove(self, keys: Iterable[int]) -> None:
        gone = set(keys)
        self._rows = [row for row in self._rows if row[1] not in gone]

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
                                    body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_ts ON samples (ts, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SqliteSpool:
    """A spool in one SQLite file. Each call is one short transaction (sub-millisecond).

    WAL with synchronous=NORMAL: a crash of the agent loses nothing; a power cut may lose
    the last few samples, which is the right trade for metrics.
    """

    def __init__(self, path: Path, max_samples: int) -> None:
        self.path = path
        self.max_samples = max_samples
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count: int = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        self._dropped: int = row[0] if row else 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return self._count

    def extend(self, samples: Iterable[Sample]) -> None:
        rows = [(_ts(s), encode_json(s)) for s in samples]
        if not rows:
            return
        with self._transaction():
            self._db.executemany("INSERT INTO samples (ts, body) VALUES (?, ?)", rows)
            self._count += len(rows)
            excess = self._count - self.max_samples
            if excess > 0:
                self._db.execute(
                    "DELETE FROM samples WHERE seq IN (SELECT seq FROM samples ORDER BY ts, seq LIMIT ?)",
                    (excess,),
                )
                self._count -= excess
                self._dropped += excess
                self._db.execute(
                    "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (self._dropped,),
                )

    def peek(self, limit: int, exclude: Collection[int] = NONE) -> list[tuple[int, Sample]]:
        # At most len(exclude) of the oldest rows are skipped: reading that many more is enough,
        # and only the rows returned are decoded.
        cursor = self._db.execute(
            "SELECT seq, body FROM samples ORDER BY ts, seq LIMIT ?", (limit + len(exclude),)
        )
        rows = ((seq, body) for seq, body in cursor if seq not in exclude)
        return [(seq, decode_json(body)) for seq, body in itertools.islice(rows, limit)]

    def remove(self, keys: Iterable[int]) -> None:
        seqs = [(k,) for k in keys]
        with self._transaction():
            self._db.executemany("DELETE FROM samples WHERE seq = ?", seqs)
        self._count = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # isolation_level=None is autocommit, so transactions are explicit.
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
