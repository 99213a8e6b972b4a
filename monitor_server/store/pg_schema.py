"""PostgreSQL schema, versioned: migration N brings ``schema_version`` from N-1 to N.

Each migration runs in its own transaction under an advisory lock, so two hubs starting at once
apply it once. Names are unqualified: the connection's ``search_path`` chooses the schema. Times
are epoch seconds in DOUBLE PRECISION and JSON is stored as text, so records equal SQLite's.
Identifiers are ``COLLATE "C"``: ordered by bytes, as SQLite orders them.
"""

from __future__ import annotations

import asyncpg

from monitor_server.store.pg_alerts import ALERT_ROUTING_DDL, ALERTS_DDL
from monitor_server.store.pg_identity import IDENTITY_DDL
from monitor_server.store.pg_releases import RELEASES_DDL
from monitor_server.store.records import ROLLUP_FIELDS, TIERS

# pg_advisory_xact_lock's key while migrating: any fixed number, the same on every hub.
MIGRATION_LOCK = 0x6D6F6E69746F72  # "monitor"

_CORE = """
CREATE TABLE devices (
    device_id       TEXT COLLATE "C" PRIMARY KEY,
    hostname        TEXT,
    agent_version   TEXT,
    platform        TEXT,
    status          TEXT,
    last_error      TEXT,
    first_seen      DOUBLE PRECISION NOT NULL,
    last_seen       DOUBLE PRECISION,
    last_sample_ts  DOUBLE PRECISION,
    last_payload    TEXT,
    online          BOOLEAN NOT NULL DEFAULT FALSE,
    connection      TEXT,
    presence_reason TEXT,
    presence_since  DOUBLE PRECISION,
    display_name    TEXT,
    tags            TEXT,
    agent_tags      TEXT,
    commands        TEXT,
    hub_id          TEXT
);
CREATE INDEX devices_hub ON devices (hub_id) WHERE hub_id IS NOT NULL;
CREATE TABLE samples (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  TEXT COLLATE "C" NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    cpu        DOUBLE PRECISION,
    ram        DOUBLE PRECISION,
    disk       DOUBLE PRECISION,
    uptime_sec BIGINT,
    status     TEXT,
    extra      TEXT,
    UNIQUE (device_id, ts)  -- a batch replayed after a lost confirmation is stored once
);
CREATE INDEX samples_ts ON samples (ts);
CREATE TABLE commands (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id       TEXT COLLATE "C" NOT NULL,
    command         TEXT NOT NULL,
    args            TEXT,
    state           TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    delivered_at    DOUBLE PRECISION,
    acked_at        DOUBLE PRECISION,
    cancelled_at    DOUBLE PRECISION,
    success         BOOLEAN,
    message         TEXT,
    result          TEXT,
    idempotency_key TEXT,
    expires_at      DOUBLE PRECISION,
    UNIQUE (device_id, idempotency_key)
);
CREATE INDEX commands_open ON commands (device_id, state, id);
CREATE INDEX commands_expiry ON commands (state, expires_at);
CREATE INDEX commands_key ON commands (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE presence_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  TEXT COLLATE "C" NOT NULL,
    online     BOOLEAN NOT NULL,
    reason     TEXT NOT NULL,
    connection TEXT,
    at         DOUBLE PRECISION NOT NULL
);
CREATE INDEX presence_device ON presence_events (device_id, id);
CREATE TABLE rollup_state (id INTEGER PRIMARY KEY CHECK (id = 1), watermark BIGINT NOT NULL);
INSERT INTO rollup_state (id, watermark) VALUES (1, 0);
"""

# Several hubs (DESIGN §13): each records itself with a heartbeat; events between them.
_CLUSTER = """
CREATE TABLE hubs (
    hub_id       TEXT PRIMARY KEY,
    address      TEXT,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE hub_events (
    id        BIGSERIAL PRIMARY KEY,
    hub_id    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    device_id TEXT,
    body      TEXT,
    at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX hub_events_at ON hub_events (at);
"""


def _rollup_table(name: str) -> str:
    """One row per device per tier bucket, as SQLite's (``schema._rollup_table``)."""
    metrics = "".join(
        f", {m}_n BIGINT NOT NULL, {m}_sum DOUBLE PRECISION NOT NULL, {m}_min DOUBLE PRECISION,"
        f" {m}_max DOUBLE PRECISION"
        for m in ROLLUP_FIELDS
    )
    return (
        f'CREATE TABLE {name} (device_id TEXT COLLATE "C" NOT NULL, start BIGINT NOT NULL,'
        f" n BIGINT NOT NULL, last_ts DOUBLE PRECISION NOT NULL, uptime_sec BIGINT{metrics},"
        f" PRIMARY KEY (device_id, start)); CREATE INDEX {name}_start ON {name} (start);\n"
    )


MIGRATIONS: tuple[str, ...] = (
    _CORE + "".join(_rollup_table(tier.table) for tier in TIERS) + IDENTITY_DDL + _CLUSTER,
    ALERTS_DDL,  # 2: alerts (DESIGN §11)
    RELEASES_DDL,  # 3: agent releases (DESIGN §12)
    ALERT_ROUTING_DDL,  # 4: alert routing: the notifiers a rule goes to, active states indexed
)

SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations the database lacks, each in one transaction; the numbers applied."""
    applied = []
    for number, script in enumerate(MIGRATIONS, start=1):
        if await _apply(conn, number, script):
            applied.append(number)
    return applied


async def _apply(conn: asyncpg.Connection, number: int, script: str) -> bool:
    """Migration ``number`` unless the database has it; whether it ran."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_VERSION_TABLE)
        version = await conn.fetchval("SELECT version FROM schema_version")
        if version is not None and version >= number:
            return False
        await conn.execute(script)
        await conn.execute(
            "INSERT INTO schema_version (id, version) VALUES (1, $1)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            number,
        )
    return True
