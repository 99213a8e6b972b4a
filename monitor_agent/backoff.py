"""Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff And Jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before reconnect attempt n is uniform in [0, min(cap, base * 2**n)].

    Full jitter spreads a fleet that lost its hub at the same instant, so the
    restarted hub is not hit by every agent in the same second.
    """

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # min() before the power would overflow for long outages; clamp the exponent instead.
        return min(self.cap, self.base * float(2 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        """Draw the next delay and move to the next attempt."""
        delay = float(self.rng.uniform(0, self.ceiling()))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (called once a session is established)."""
        self.attempt = 0
