"""The login throttle: a bounded number of failures per client within a window."""

from __future__ import annotations

from monitor_server.throttle import Throttle as LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_max_failures_until_window_passes() -> None:
    """The third failure in the window blocks the client until the first one ages out."""
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60, clock=clock)
    for step in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
        clock.now += 10 * (step < 2)
    assert throttle.retry_after("a") == 40  # first failure at 1000 ages out at 1060; now 1020
    assert throttle.retry_after("b") == 0
    clock.now = 1061
    assert throttle.retry_after("a") == 0


def test_success_resets_and_memory_is_bounded() -> None:
    """A success forgets the client's failures; only max_clients clients are remembered."""
    throttle = LoginThrottle(max_failures=1, window=60, max_clients=2, clock=Clock())
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0
    for client in ("b", "c", "d"):
        throttle.failed(client)
    assert throttle.retry_after("b") == 0  # the oldest was forgotten
    assert throttle.retry_after("d") > 0
