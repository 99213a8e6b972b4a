"""Failed dashboard logins per client address: after too many, wait before trying again.

A generated token cannot be guessed, but a configured short one could be: this bounds the
guessing rate of the login form. Memory stays bounded (oldest clients forgotten first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait before its next attempt (0: it may try now)."""
        recent = self._recent(client)
        if len(recent) < self._max_failures:
            return 0.0
        return max(0.0, recent[0] + self._window - self._clock())

    def failed(self, client: str) -> None:
        self._failures[client] = [*self._recent(client), self._clock()][-self._max_failures :]
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> list[float]:
        cutoff = self._clock() - self._window
        return [at for at in self._failures.get(client, ()) if at > cutoff]
