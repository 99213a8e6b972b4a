"""The spool: bounded, oldest first out, oldest dropped first, counter kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor_agent.spool import MemorySpool, Spool, SqliteSpool


@pytest.fixture(params=["memory", "sqlite"])
def make_spool(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(max_samples: int) -> Spool:
        if request.param == "memory":
            return MemorySpool(max_samples)
        return SqliteSpool(tmp_path / "spool.sqlite3", max_samples)

    return make


def samples(*stamps: float) -> list[dict[str, float]]:
    return [{"ts": ts, "cpu": ts} for ts in stamps]


def test_peek_returns_oldest_first(make_spool) -> None:  # type: ignore[no-untyped-def]
    """Samples come out in timestamp order, even when added out of order."""
    spool = make_spool(10)
    spool.extend(samples(3, 1))
    spool.extend(samples(2))
    assert [s["ts"] for _, s in spool.peek(10)] == [1, 2, 3]


def test_full_spool_drops_oldest_and_counts(make_spool) -> None:  # type: ignore[no-untyped-def]
    """Over the limit the oldest samples go, and ``dropped`` says how many."""
    spool = make_spool(3)
    spool.extend(samples(1, 2, 3, 4, 5))
    assert len(spool) == 3
    assert spool.dropped == 2
    assert [s["ts"] for _, s in spool.peek(10)] == [3, 4, 5]


def test_remove_forgets_only_given_keys(make_spool) -> None:  # type: ignore[no-untyped-def]
    """Removing a batch leaves the rest in order."""
    spool = make_spool(10)
    spool.extend(samples(1, 2, 3))
    first_two = [key for key, _ in spool.peek(2)]
    spool.remove(first_two)
    assert [s["ts"] for _, s in spool.peek(10)] == [3]
    assert len(spool) == 1


def test_sqlite_spool_survives_a_restart(tmp_path: Path) -> None:
    """Samples and the dropped counter are still there after reopening the file."""
    path = tmp_path / "spool.sqlite3"
    spool = SqliteSpool(path, 2)
    spool.extend(samples(1, 2, 3))
    spool.close()
    again = SqliteSpool(path, 2)
    assert [s["ts"] for _, s in again.peek(10)] == [2, 3]
    assert again.dropped == 1
    again.close()


def test_sqlite_spool_keeps_extra_fields(tmp_path: Path) -> None:
    """Whatever the sample carries comes back unchanged."""
    spool = SqliteSpool(tmp_path / "s.sqlite3", 5)
    sample = {"ts": 1.5, "hostname": "h", "temp_max": None, "nested": {"a": [1, 2]}}
    spool.extend([sample])
    assert spool.peek(1)[0][1] == sample
    spool.close()


def test_peek_leaves_out_excluded_keys(make_spool) -> None:  # type: ignore[no-untyped-def]
    """Keys in flight are skipped and the next oldest samples fill the limit instead."""
    spool = make_spool(10)
    spool.extend(samples(1, 2, 3, 4, 5))
    in_flight = frozenset(key for key, _ in spool.peek(2))
    assert [s["ts"] for _, s in spool.peek(2, in_flight)] == [3, 4]
    assert [s["ts"] for _, s in spool.peek(10, in_flight)] == [3, 4, 5]
    assert len(spool) == 5
