"""SQLite schema, versioned: migration N brings ``PRAGMA user_version`` from N-1 to N."""

from __future__ import annotations

from monitor_server.store.sqlite_alerts import ALERT_ROUTING_DDL, ALERTS_DDL
from monitor_server.store.sqlite_releases import RELEASES_DDL

# The metrics migration 4 gave columns in the tiers (a later field needs a migration adding them).
TIER_FIELDS_V4: tuple[str, ...] = (
    "cpu",
    "ram",
    "disk",
    "load_1",
    "load_5",
    "load_15",
    "mem_used",
    "mem_total",
    "swap_used",
    "swap_total",
    "disk_used",
    "disk_total",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
    "procs",
    "temp_max",
    "agent_rss",
)


def _rollup_table(name: str) -> str:
    """One row per device per tier bucket (``start``: epoch seconds, a multiple of the width).

    ``n`` samples, the newest sample's time, the highest uptime, and for each metric of
    ``TIER_FIELDS_V4`` how many samples had it, their sum, minimum and maximum.
    """
    metrics = "".join(
        f", {m}_n INTEGER NOT NULL, {m}_sum REAL NOT NULL, {m}_min REAL, {m}_max REAL" for m in TIER_FIELDS_V4
    )
    return (
        f"CREATE TABLE {name} (device_id TEXT NOT NULL, start INTEGER NOT NULL, n INTEGER NOT NULL,"
        f" last_ts REAL NOT NULL, uptime_sec INTEGER{metrics}, PRIMARY KEY (device_id, start))"
        f" WITHOUT ROWID; CREATE INDEX {name}_start ON {name} (start);"
    )


def _coarser_tier(name: str, source: str, width: int) -> str:
    """A new tier of ``width`` seconds, filled from the finer tier ``source`` (same columns)."""
    parts = "".join(f", SUM({m}_n), SUM({m}_sum), MIN({m}_min), MAX({m}_max)" for m in TIER_FIELDS_V4)
    columns = "".join(f", {m}_n, {m}_sum, {m}_min, {m}_max" for m in TIER_FIELDS_V4)
    into = f"INSERT INTO {name} (device_id, start, n, last_ts, uptime_sec{columns}) "
    rows = f"SELECT device_id, start / {width} * {width}, SUM(n), MAX(last_ts), MAX(uptime_sec){parts}"
    return _rollup_table(name) + into + rows + f" FROM {source} GROUP BY 1, 2;"  # constants only


_ROLLUP_STATE = """
    CREATE TABLE rollup_state (id INTEGER PRIMARY KEY CHECK (id = 1), watermark INTEGER NOT NULL);
    INSERT INTO rollup_state (id, watermark) VALUES (1, 0);
"""

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
    # 3: identity (DESIGN §10). Secrets are stored only as digests: SHA-256 hex for random
    # tokens, Argon2id for passwords. Times are epoch seconds like everywhere else.
    """
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL,
        created_at    REAL NOT NULL,
        changed_at    REAL NOT NULL
    );
    CREATE TABLE user_sessions (
        id_hash    TEXT PRIMARY KEY,
        user_name  TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX user_sessions_user ON user_sessions (user_name);
    CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        name       TEXT NOT NULL,
        role       TEXT NOT NULL,
        key_hash   TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX api_keys_owner ON api_keys (owner);
    CREATE TABLE enrollment_tokens (
        id         TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        max_uses   INTEGER NOT NULL,
        uses       INTEGER NOT NULL DEFAULT 0,
        tags       TEXT NOT NULL DEFAULT '[]',
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE device_credentials (
        device_id        TEXT PRIMARY KEY,
        credential_hash  TEXT NOT NULL UNIQUE,
        pending_hash     TEXT UNIQUE,
        issued_at        REAL NOT NULL,
        rotated_at       REAL,
        revoked          INTEGER NOT NULL DEFAULT 0,
        tags             TEXT NOT NULL DEFAULT '[]',
        enrollment_token TEXT
    );
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         REAL NOT NULL,
        actor_kind TEXT NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT,
        address    TEXT,
        detail     TEXT
    );
    CREATE INDEX audit_at ON audit (at);
    """,
    # 4: history tiers (DESIGN §14), filled by ``SQLiteStore.roll_up`` from the samples whose id is
    # above ``rollup_state.watermark``; a database upgraded to 4 folds its stored samples on the
    # first pass.
    _rollup_table("rollup_minute") + _rollup_table("rollup_hour") + _ROLLUP_STATE,
    # 5: device lifecycle (issue 16): a display name, the tags operators set and the tags the agent
    # reports in hello (JSON arrays of strings); a bulk command is one command per device sharing
    # the Idempotency-Key ``bulk:<id>``, found across devices by this index.
    """
    ALTER TABLE devices ADD COLUMN display_name TEXT;
    ALTER TABLE devices ADD COLUMN tags TEXT;
    ALTER TABLE devices ADD COLUMN agent_tags TEXT;
    CREATE INDEX commands_key ON commands (idempotency_key) WHERE idempotency_key IS NOT NULL;
    """,
    # 6: a six-hour tier, so a one-year chart (12 h buckets) reads about 1,500 rows instead of
    # 8,760 hour rows; filled from the hour tier, then folded like the others.
    _coarser_tier("rollup_6h", "rollup_hour", 21600),
    # 7: the commands the agent offered in its last hello (a JSON array), shown while it is away.
    "ALTER TABLE devices ADD COLUMN commands TEXT;",
    # 8: the hub that holds an online device's session (DESIGN §13): a hub's late "offline" for a
    # device another hub took over changes nothing, and a lost hub's devices are found by it.
    """
    ALTER TABLE devices ADD COLUMN hub_id TEXT;
    CREATE INDEX devices_hub ON devices (hub_id) WHERE hub_id IS NOT NULL;
    """,
    # 9: alerts (DESIGN §11): rules, state per (rule, device), notifiers, the outbox, silences.
    ALERTS_DDL,
    # 10: agent releases (DESIGN §12): bundles, one rollout per version, each device's progress.
    RELEASES_DDL,
    # 11: alert routing (issue 14): the notifiers a rule goes to; the pending and firing states indexed.
    ALERT_ROUTING_DDL,
    # 12: a roll-up pass folds its sums into the tiers a range of devices per transaction: while
    # one is under way, the samples with ids up to ``pass_high`` of devices up to ``pass_device``
    # are folded, those of the devices after it only up to ``watermark`` (both NULL between passes).
    """
    ALTER TABLE rollup_state ADD COLUMN pass_high INTEGER;
    ALTER TABLE rollup_state ADD COLUMN pass_device TEXT;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
