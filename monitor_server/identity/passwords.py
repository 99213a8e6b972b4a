"""Argon2id password hashes (argon2-cffi's RFC 9106 defaults), computed off the event loop.

A hash takes tens of milliseconds of CPU and 64 MiB: on the loop it would stall every socket,
so both directions run in a worker thread. An unknown user is checked against a dummy hash so
the answer takes as long as for a known one (no user enumeration by timing).
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # Argon2id, t=3, m=64 MiB, p=4


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
