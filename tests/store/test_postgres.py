"""What only the PostgreSQL store has to prove: migrations, several hubs at once, URL selection."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import pytest

from monitor_server.backup import main as backup_main
from monitor_server.settings import Settings
from monitor_server.store import PresenceEvent, Sample, SQLiteStore, is_postgres_url, open_store, shown
from monitor_server.store.pg_schema import SCHEMA_VERSION, migrate
from monitor_server.store.postgres import PostgresStore
from monitor_server.store.records import EnrollmentToken
from tests.timing import t

T0 = 1_800_000_000.0


def sample(device: str, ts: float) -> Sample:
    return Sample(device, ts, 1.0, 2.0, 3.0, 4, "ok", {"load_1": 0.5})


async def versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_version")]
    finally:
        await conn.close()


async def finished_or_waiting(task: asyncio.Task[int], conn: asyncpg.Connection) -> None:
    """Until ``task`` is done or waits for a lock on ``samples`` (scaled timeout)."""
    async with asyncio.timeout(t(10)):
        while True:
            if task.done() or await conn.fetchval(_WAITING):
                return
            await asyncio.sleep(0.01)


_WAITING = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'samples'::regclass"


def test_open_store_chooses_the_backend_by_url() -> None:
    """postgresql:// and postgres:// give the PostgreSQL store; a path or sqlite:/// gives SQLite."""
    assert isinstance(open_store("postgresql://u@h/db?search_path=s"), PostgresStore)
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    assert isinstance(open_store("data/monitor.db"), SQLiteStore)
    assert is_postgres_url("postgresql://x") and not is_postgres_url("data/postgresql.db")


def test_shown_hides_a_urls_password() -> None:
    """What a log line shows of the database setting: never a password."""
    assert shown("postgresql://hub:s3cret@db:5432/fleet?search_path=a") == (
        "postgresql://hub:***@db:5432/fleet?search_path=a"
    )
    assert shown("postgresql://hub@db/fleet") == "postgresql://hub@db/fleet"
    assert shown(Path("data/monitor.db")) == "data/monitor.db"


def test_settings_keep_a_url_as_text_and_put_the_token_in_data() -> None:
    """MONITOR_DB as a URL is not folded into a path; the token then defaults to ./data."""
    url = "postgresql://postgres@127.0.0.1:5432/test"
    settings = Settings(db=url)
    assert settings.db == url and str(settings.token_dir) == "data"
    assert str(Settings(db="x/y.db").token_dir) == "x"


def test_backup_refuses_a_server_database() -> None:
    """``monitor-server backup`` copies SQLite files only; a URL is refused before anything runs."""
    with pytest.raises(SystemExit, match="pg_dump"):
        backup_main(["copy.db", "--db", "postgresql://postgres@127.0.0.1:5432/test"])


@pytest.mark.postgres
async def test_reopen_keeps_data_and_does_not_migrate_again(pg_url: str) -> None:
    """Close and reopen the same schema: rows are there, and the schema version is written once."""
    first = PostgresStore(pg_url)
    await first.open()
    await first.write_samples([sample("d1", T0)], T0)
    await first.create_command("d1", "ping", None, T0)
    await first.close()
    assert await versions(pg_url) == [SCHEMA_VERSION]
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn) == []  # every migration is recorded as applied
    finally:
        await conn.close()
    again = PostgresStore(pg_url)
    await again.open()
    try:
        assert await again.query_samples("d1", None, None, 10) == [sample("d1", T0)]
        assert [c.command for c in await again.list_commands("d1", 10)] == ["ping"]
    finally:
        await again.close()
    assert await versions(pg_url) == [SCHEMA_VERSION]


@pytest.mark.postgres
async def test_two_hubs_starting_at_once_migrate_once(pg_url: str) -> None:
    """Hubs opening an empty schema together: one applies the migrations, both work."""
    hubs = [PostgresStore(pg_url) for _ in range(3)]
    await asyncio.gather(*(hub.open() for hub in hubs))
    try:
        assert await versions(pg_url) == [SCHEMA_VERSION]
        await hubs[0].touch_device("d1", T0)
        assert [d.device_id for d in await hubs[2].list_devices()] == ["d1"]
    finally:
        await asyncio.gather(*(hub.close() for hub in hubs))


@pytest.mark.postgres
async def test_same_idempotency_key_on_two_hubs_at_once_is_one_command(pg_url: str) -> None:
    """Two hubs enqueue with one key at the same moment: one command, both answer with it."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    try:
        for i in range(20):
            key = f"k{i}"
            results = await asyncio.gather(
                a.create_command("d1", "ping", {"n": i}, T0, key),
                b.create_command("d1", "ping", {"n": i}, T0, key),
            )
            assert results[0][0] == results[1][0]
            assert sorted(created for _, created in results) == [False, True]
        assert len(await a.list_commands("d1", 100)) == 20
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_roll_up_during_ingest_misses_no_sample(pg_url: str) -> None:
    """Batches committed while another hub folds: every sample is folded exactly once."""
    ingest, folder = PostgresStore(pg_url), PostgresStore(pg_url)
    await ingest.open()
    await folder.open()
    try:
        batches = [[sample(f"d{i % 4}", T0 + i * 100 + j) for j in range(50)] for i in range(40)]
        stop = asyncio.Event()

        async def fold() -> int:
            total = 0
            while not stop.is_set():
                total += await folder.roll_up(batch=70)
                await asyncio.sleep(0)
            return total

        folding = asyncio.create_task(fold())
        await asyncio.gather(*(ingest.write_samples(batch, T0) for batch in batches))
        stop.set()
        folded = await folding + await folder.roll_up()
        assert folded == 40 * 50
        minutes = await folder.query_buckets("d0", None, None, 60.0, 10_000)
        assert sum(b.extra["count"] for b in minutes) == 10 * 50
        assert await folder.delete_samples_before(T0 + 10_000) == 40 * 50
        assert (
            sum(b.extra["count"] for b in await folder.query_buckets("d3", None, None, 60.0, 10_000)) == 500
        )
    finally:
        await ingest.close()
        await folder.close()


@pytest.mark.postgres
async def test_roll_up_waits_for_ingest_in_flight(pg_url: str) -> None:
    """A sample whose id is below a committed batch's, committed later, is still folded.

    Ids are taken at insert, rows are seen at commit: without waiting, the watermark would pass
    the slow transaction's sample and it would never reach the tiers.
    """
    store = PostgresStore(pg_url)
    await store.open()
    slow = await asyncpg.connect(pg_url)
    try:
        await store.write_samples([sample("d1", T0)], T0)  # the device row exists
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute("INSERT INTO samples (device_id, ts, cpu) VALUES ('d1', $1, 7.0)", T0 + 1)
        await store.write_samples([sample("d1", T0 + 2)], T0)  # higher id, committed first
        folding = asyncio.create_task(store.roll_up())
        await finished_or_waiting(folding, slow)
        await transaction.commit()
        assert await folding + await store.roll_up() == 3
        minutes = await store.query_buckets("d1", None, None, 60.0, 10)
        assert [b.extra["count"] for b in minutes] == [3]
        assert await store.delete_samples_before(T0 + 60) == 3
        assert [b.extra["max"]["cpu"] for b in await store.query_buckets("d1", None, None, 60.0, 10)] == [7.0]
    finally:
        await slow.close()
        await store.close()


@pytest.mark.postgres
async def test_two_hubs_writing_the_same_devices_never_deadlock(pg_url: str) -> None:
    """Ingest, presence (one and many), takeover, folding and deletion from two hubs at once.

    Every multi-row write locks device rows in id order, so they wait for each other; a
    different order made PostgreSQL abort one of them ("deadlock detected").
    """
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    draw = random.Random(1)

    async def ingest(store: PostgresStore, base: float) -> None:
        for k in range(30):
            devices = draw.sample(range(50), 30)
            await store.write_samples(
                [sample(f"d{d}", base + k * 1000 + j) for j, d in enumerate(devices)], T0
            )

    async def presence(store: PostgresStore, hub: str) -> None:
        for _ in range(60):
            await store.set_presence(
                f"d{draw.randrange(50)}", draw.random() < 0.5, "connected", "ws", T0, hub
            )

    async def many(store: PostgresStore) -> None:
        for _ in range(15):
            gone = [
                PresenceEvent(f"d{d}", False, "hub_restart", "ws", T0) for d in draw.sample(range(50), 40)
            ]
            await store.set_presence_many(gone)

    async def housekeeping(store: PostgresStore) -> None:
        for _ in range(20):
            await store.roll_up(batch=200)
            await store.delete_samples_before(T0 * 10)
            await store.mark_hub_lost("A", T0)
        for _ in range(5):
            await store.delete_device(f"d{draw.randrange(50)}")

    try:
        async with asyncio.timeout(t(60)):
            await asyncio.gather(
                ingest(a, T0), ingest(b, T0 * 2), presence(a, "A"), presence(b, "B"), many(a), housekeeping(b)
            )
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_delete_device_with_only_a_credential(pg_url: str) -> None:
    """A device enrolled but never seen: deleting it removes the credential (and says so)."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.create_enrollment_token(EnrollmentToken("t1", "th", "ana", T0, T0 + 60, 1))
        await store.enroll_device("th", "d9", "ch", T0)
        removed = await store.delete_device("d9")
        assert removed is not None and removed.credential and removed.samples == 0
        assert await store.get_device_credential("d9") is None
    finally:
        await store.close()


@pytest.mark.postgres
async def test_unreachable_server_fails_to_open() -> None:
    """A server that does not answer is an error at open, not a store that fails later."""
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(ConnectionRefusedError):
        await store.open()
    await store.close()
