"""SQLite schema, versioned: migration N brings ``PRAGMA user_version`` from N-1 to N."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE devices (
        device_id       TEXT PRIMARY KEY,
        hostname        TEXT,
        agent_version   TEXT,
        platform        TEXT,
        status          TEXT,
        last_error      TEXT,
        first_seen      REAL NOT NULL,
        last_seen       REAL,
        last_sample_ts  REAL,
        last_payload    TEXT,
        online          INTEGER NOT NULL DEFAULT 0,
        connection      TEXT,
        presence_reason TEXT,
        presence_since  REAL
    );
    CREATE TABLE samples (
        id         INTEGER PRIMARY KEY,
        device_id  TEXT NOT NULL,
        ts         REAL NOT NULL,
        cpu        REAL,
        ram        REAL,
        disk       REAL,
        uptime_sec INTEGER,
        status     TEXT,
        extra      TEXT
    );
    -- unique: a batch replayed after a lost confirmation is stored once
    CREATE UNIQUE INDEX samples_device_ts ON samples (device_id, ts);
    CREATE INDEX samples_ts ON samples (ts);
    CREATE TABLE commands (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id       TEXT NOT NULL,
        command         TEXT NOT NULL,
        args            TEXT,
        state           TEXT NOT NULL,
        created_at      REAL NOT NULL,
        delivered_at    REAL,
        acked_at        REAL,
        cancelled_at    REAL,
        success         INTEGER,
        message         TEXT,
        result          TEXT,
        idempotency_key TEXT,
        UNIQUE (device_id, idempotency_key)
    );
    CREATE INDEX commands_open ON commands (device_id, state, id);
    CREATE TABLE presence_events (
        id         INTEGER PRIMARY KEY,
        device_id  TEXT NOT NULL,
        online     INTEGER NOT NULL,
        reason     TEXT NOT NULL,
        connection TEXT,
        at         REAL NOT NULL
    );
    CREATE INDEX presence_device ON presence_events (device_id, id);
    """,
    # 2: a command may expire (``ttl`` / ``expires_at``); the sweep finds open ones past it by index.
    """
    ALTER TABLE commands ADD COLUMN expires_at REAL;
    CREATE INDEX commands_expiry ON commands (state, expires_at);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
