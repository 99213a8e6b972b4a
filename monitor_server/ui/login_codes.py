"""One-time login codes: what ``make run`` prints instead of putting the token in a URL.

A code is random, short-lived and works once. Only its SHA-256 is kept, so the lookup (a dict
probe) reveals nothing useful through timing, and a memory dump does not hand out valid codes.
Codes live in memory: a hub restart invalidates them, which is the safe direction. A code logs in
as the user it was issued for (``make run``: the admin account), or with the legacy token's rights
when issued for no user.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable


class LoginCodes:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self._clock = clock
        self._expiry: dict[bytes, tuple[float, str]] = {}  # digest -> (expiry, user)

    def issue(self, user: str = "") -> str:
        """A code that logs in as ``user`` ("": a legacy-token session)."""
        code = secrets.token_urlsafe(24)
        now = self._clock()
        self._expiry = {h: e for h, e in self._expiry.items() if e[0] > now}
        self._expiry[_digest(code)] = (now + self.ttl, user)
        return code

    def spend(self, code: str | None) -> str | None:
        """The user of a code issued less than ``ttl`` ago, once; None otherwise. Spent either way."""
        if not code:
            return None
        found = self._expiry.pop(_digest(code), None)
        return found[1] if found is not None and found[0] > self._clock() else None

    def redeem(self, code: str | None) -> bool:
        """True once for a code issued less than ``ttl`` ago; the code is spent either way."""
        return self.spend(code) is not None


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()
