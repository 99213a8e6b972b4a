"""One-time login codes: what ``make run`` prints instead of putting the token in a URL.

A code is random, short-lived and works once. Only its SHA-256 is kept, so the lookup (a dict
probe) reveals nothing useful through timing, and a memory dump does not hand out valid codes.
Codes live in memory: a hub restart invalidates them, which is the safe direction.
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
        self._expiry: dict[bytes, float] = {}

    def issue(self) -> str:
        code = secrets.token_urlsafe(24)
        now = self._clock()
        self._expiry = {h: e for h, e in self._expiry.items() if e > now}
        self._expiry[_digest(code)] = now + self.ttl
        return code

    def redeem(self, code: str | None) -> bool:
        """True once for a code issued less than ``ttl`` ago; the code is spent either way."""
        if not code:
            return False
        expires = self._expiry.pop(_digest(code), None)
        return expires is not None and expires > self._clock()


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()
