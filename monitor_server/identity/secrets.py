"""Random secrets with a prefix naming their kind, their SHA-256 digests, constant-time comparison.

A secret is 32 random bytes (256 bits) in URL-safe base64 after its prefix, so a leaked one is
recognisable (and the log filter can mask it) and the hub knows which table to look it up in.
Only ``digest(secret)`` is stored; a random secret needs no slow hash (nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

SECRET_BYTES = 32


class SecretKind(StrEnum):
    """The prefix of each kind of secret the hub issues."""

    DEVICE_CREDENTIAL = "mdc_"
    API_KEY = "mak_"
    ENROLLMENT_TOKEN = "met_"  # noqa: S105 - a prefix, not a secret
    SESSION = "msess_"


PREFIXES = tuple(kind.value for kind in SecretKind)


def new_secret(kind: SecretKind) -> str:
    return kind.value + secrets.token_urlsafe(SECRET_BYTES)


def new_id() -> str:
    """A public identifier (API keys, enrollment tokens): random, short, not a secret."""
    return secrets.token_hex(8)


def kind_of(secret: str) -> SecretKind | None:
    for kind in SecretKind:
        if secret.startswith(kind.value):
            return kind
    return None


def digest(secret: str) -> str:
    """SHA-256 of the secret, hex: what the store keeps and looks up."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time equality of two secrets (or digests)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
