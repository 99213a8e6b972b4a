"""Full-jitter backoff: bounds, growth, cap and reset."""

from __future__ import annotations

import random

import pytest

from monitor_agent.backoff import Backoff


def test_delays_stay_under_a_doubling_ceiling() -> None:
    """Each delay is within [0, min(cap, base * 2**attempt)]."""
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(7))
    for attempt in range(12):
        delay = backoff.next_delay()
        assert 0 <= delay <= min(60.0, 2.0**attempt)


def test_ceiling_is_capped_even_after_very_many_failures() -> None:
    """A months-long outage neither overflows nor exceeds the cap."""
    backoff = Backoff(base=1.0, cap=60.0, attempt=10_000)
    assert backoff.ceiling() == 60.0
    assert backoff.next_delay() <= 60.0


def test_jitter_spreads_delays() -> None:
    """Delays at the same attempt differ (full jitter), so a fleet does not reconnect in lockstep."""
    rng = random.Random(1)
    delays = {Backoff(base=1.0, cap=60.0, rng=rng, attempt=5).next_delay() for _ in range(20)}
    assert len(delays) == 20


def test_reset_starts_over() -> None:
    """After a successful connection the next delay is small again."""
    backoff = Backoff(base=1.0, cap=60.0, attempt=8)
    backoff.reset()
    assert backoff.ceiling() == 1.0


def test_rejects_nonsense_bounds() -> None:
    """base must be positive and not above cap."""
    with pytest.raises(ValueError, match="base"):
        Backoff(base=10.0, cap=1.0)
