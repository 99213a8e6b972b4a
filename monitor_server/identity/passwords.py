"""Argon2id password hashes (OWASP's parameters: 19 MiB, 2 passes, 1 lane), computed off the loop.

A hash takes about 40 ms of CPU and 19 MiB here: on the loop it would stall every socket,
so both directions run in a worker thread. An unknown user is checked against a dummy hash so
the answer takes as long as for a known one (no user enumeration by timing).
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's default (t=3, m=64 MiB, p=4) measured 285 ms of CPU per check on this 2-core
# machine: 3.6 logins/s per core, and failed guesses could keep a hub busy. OWASP's Argon2id
# minimum measured 41 ms. Hashes keep their own parameters, so older ones still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; ``None`` (no such user) costs the same and is False."""
    return await asyncio.to_thread(_verify, stored, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        matched = _hasher.verify(stored if stored is not None else _dummy(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and stored is not None


@cache
def _dummy() -> str:
    return _hasher.hash("not a password anyone has")
