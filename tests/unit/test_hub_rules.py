"""The hub's pure rules: presence expiry, retention cut-off, event bus back-pressure, token handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor_server.bus import EventBus, Subscription
from monitor_server.presence import expired
from monitor_server.retention import cutoff
from monitor_server.settings import Settings
from monitor_server.token import resolve_token


def test_http_devices_expire_after_window() -> None:
    """Only devices whose last ingest is older than the window are expired; the devices are held
    oldest contact first, and the scan stops at the first one inside the window."""
    seen = {"older": 10.0, "stale": 69.9, "edge": 70.0, "fresh": 100.0}
    assert expired(seen, now=100.0, window=30.0) == ["older", "stale"]
    assert expired({"edge": 70.0, "after a clock step back": 60.0}, now=100.0, window=30.0) == []


def test_retention_cutoff() -> None:
    """The cut-off is ``days`` before now."""
    assert cutoff(now=10 * 86400.0, days=7) == 3 * 86400.0


def test_slow_subscriber_is_cut_off_not_blocking() -> None:
    """A subscriber that falls behind its queue size is dropped; others keep receiving."""
    bus = EventBus()
    slow, fast = Subscription(2), Subscription(100)
    bus._subscribers.update({slow, fast})
    for i in range(5):
        bus.publish({"n": i})
    assert slow.overflowed and not fast.overflowed
    assert fast.pending() == 5
    assert bus.subscriber_count == 1


def test_token_generated_once_and_reused(tmp_path: Path) -> None:
    """Without a configured token one is generated, kept (mode 0600) and reused on the next start."""
    settings = Settings(db=tmp_path / "monitor.db")
    first = resolve_token(settings)
    again = resolve_token(settings)
    assert first.source == "generated" and len(first.value) >= 32
    assert again.value == first.value and again.source != "generated"
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600


def test_well_known_token_flagged_and_compared_safely(tmp_path: Path) -> None:
    """dev-token-123 works when configured but is flagged insecure; a wrong or empty token never matches."""
    token = resolve_token(Settings(db=tmp_path / "m.db", token="dev-token-123"))
    assert token.insecure
    assert token.matches("dev-token-123")
    assert not token.matches("dev-token-124") and not token.matches("") and not token.matches(None)


def test_expected_token_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The original server's EXPECTED_TOKEN variable still configures the token."""
    monkeypatch.setenv("EXPECTED_TOKEN", "legacy-token-value-123")
    monkeypatch.delenv("MONITOR_TOKEN", raising=False)
    token = Settings().token
    assert token is not None
    assert token.get_secret_value() == "legacy-token-value-123"
