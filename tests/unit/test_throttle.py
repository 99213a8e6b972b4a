"""The hub's throttle: failures per address within a window, then a short lockout."""

from __future__ import annotations

from monitor_server.throttle import Throttle, too_many_attempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_is_short_then_one_try_per_lockout_until_the_window_clears() -> None:
    """A burst past the limit waits the lockout, not the window; more guessing waits again."""
    clock = Clock()
    throttle = Throttle(max_failures=3, window=60, lockout=10, clock=clock)
    for _ in range(3):
        throttle.failed("a")
    assert throttle.retry_after("a") == 10
    clock.now += 10
    assert throttle.retry_after("a") == 0
    throttle.failed("a")
    assert throttle.retry_after("a") == 10
    clock.now += 61
    throttle.failed("a")  # the window passed: counting starts over
    assert throttle.retry_after("a") == 0


def test_a_stricter_limit_shares_the_count() -> None:
    """One way in may allow fewer failures than another; both read the same count."""
    throttle = Throttle(max_failures=4, window=60, lockout=30, clock=Clock())
    for _ in range(2):
        throttle.failed("a")
    assert throttle.retry_after("a", 2) == 30 and throttle.retry_after("a", 4) == 0
    assert throttle.retry_after("a", 99) == 0  # clamped to max_failures


def test_success_clears_only_its_own_address() -> None:
    """A success at one address leaves another address's lockout in place."""
    throttle = Throttle(max_failures=1, window=60, clock=Clock())
    throttle.failed("a")
    throttle.failed("b")
    throttle.succeeded("b")
    assert throttle.retry_after("a") > 0 and throttle.retry_after("b") == 0


def test_refusal_is_429_with_whole_seconds() -> None:
    """The refusal carries Retry-After rounded up to at least one second and a JSON detail."""
    response = too_many_attempts(0.2)
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert b"retry in 1 s" in response.body
