"""Failed authentication per client address, on every way in: after too many, a short lockout.

One ``Throttle`` per hub counts wrong tokens on REST, on the ``/ws/agent`` upgrade and on the
dashboard's login form; a locked-out address is also refused on ``/ws/ui``. Only presented
secrets that could be guessed count: a request with no token is not a guess, and session
cookies are signed, so a stale one never counts.

The address is the ASGI ``client`` as uvicorn resolved it: its proxy-headers middleware takes
``X-Forwarded-For`` only from ``MONITOR_FORWARDED_ALLOW_IPS``, so a client that is not a
configured proxy cannot pick the address it is counted under. Nothing here reads that header.

While an address is locked out even the right token from it is refused (429 with
``Retry-After``): answering would tell a guesser when it found the token. Other addresses,
including the right user's, are unaffected, and a success never clears another address's count.
Memory stays bounded (the oldest clients are forgotten first).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

log = logging.getLogger("monitor_server.throttle")


class Throttle:
    """``max_failures`` within ``window`` seconds lock a client out for ``lockout`` seconds.

    The lockout ends earlier if the failures that caused it age out of the window first
    (``lockout`` defaults to the window). Once locked out, a client that keeps guessing gets
    one more try per lockout until a whole window passes without failures.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        lockout: float | None = None,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._lockout = window if lockout is None else lockout
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, client: str, limit: int | None = None) -> float:
        """Seconds this client must wait before its next attempt (0: it may try now).

        ``limit`` (at most ``max_failures``) lets one way in allow fewer failures than another
        while sharing the count: the login form, typed by people, is stricter than the API.
        """
        if client not in self._failures:
            return 0.0
        limit = min(limit or self._max_failures, self._max_failures)
        recent = self._recent(client)
        if len(recent) < limit:
            return 0.0
        until = min(recent[-limit] + self._window, recent[-1] + self._lockout)
        return max(0.0, until - self._clock())

    def failed(self, client: str) -> None:
        recent = [*self._recent(client), self._clock()][-self._max_failures :]
        self._failures[client] = recent
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)
        if len(recent) == self._max_failures and self.retry_after(client):
            log.warning(
                "%d failed authentications from %s within %.0f s: refusing it for %.0f s",
                self._max_failures,
                client,
                self._window,
                self.retry_after(client),
            )

    def succeeded(self, client: str) -> None:
        """Forget this client's failures (only its own)."""
        self._failures.pop(client, None)

    def _recent(self, client: str) -> list[float]:
        cutoff = self._clock() - self._window
        return [at for at in self._failures.get(client, ()) if at > cutoff]


def client_address(conn: HTTPConnection) -> str:
    """The address failures are counted under: the peer, or the client a trusted proxy named."""
    return conn.client.host if conn.client else "unknown"


def too_many_attempts(wait: float) -> Response:
    """429 with ``Retry-After`` (whole seconds, at least 1) and a JSON ``detail``."""
    seconds = max(1, math.ceil(wait))
    detail = f"too many failed authentication attempts from this address; retry in {seconds} s"
    return JSONResponse({"detail": detail}, 429, headers={"Retry-After": str(seconds)})
