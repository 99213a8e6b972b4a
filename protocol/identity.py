"""Request bodies of the identity endpoints (DESIGN §10): enrollment, users, login, API keys.

Shared by the hub (which parses them) and the agent (which sends ``EnrollRequest``). Passwords
and secrets are plain ``str`` here; the hub never logs a body, and answers name fields, not values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from protocol.frames import DEVICE_ID_PATTERN

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"  # user and API key names
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$"
MAX_LIFETIME = 10 * 365 * 86400.0  # seconds: the longest expires_in accepted
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # Argon2 takes any length; this bounds the work one request can ask for


class Role(StrEnum):
    """A user's or API key's role: admin > operator > viewer (each may do all the next may)."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        """Whether this role may do what ``other`` may."""
        return self.rank >= other.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollmentTokenCreate(_Body):
    """``POST /enrollment-tokens``: how long the token works, how many devices may use it."""

    expires_in: float = Field(gt=0, le=MAX_LIFETIME, allow_inf_nan=False, strict=True)
    max_uses: int = Field(1, ge=1, le=1_000_000, strict=True)
    tags: list[Annotated[str, Field(pattern=TAG_PATTERN)]] = Field(default_factory=list, max_length=32)


class EnrollRequest(_Body):
    """``POST /enroll``: an enrollment token exchanged for this device's own credential."""

    token: str = Field(min_length=1, max_length=256)
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    hostname: str | None = Field(None, max_length=255)


class UserCreate(_Body):
    """``POST /users``."""

    name: str = Field(pattern=NAME_PATTERN)
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    role: Role


class UserUpdate(_Body):
    """``PATCH /users/{name}``: a new password, a new role, or both."""

    password: str | None = Field(None, min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    role: Role | None = None


class LoginRequest(_Body):
    """``POST /login``."""

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class ApiKeyCreate(_Body):
    """``POST /api-keys``: a key for the caller (or, by an admin, for ``owner``)."""

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    expires_in: float | None = Field(None, gt=0, le=MAX_LIFETIME, allow_inf_nan=False, strict=True)
    owner: str | None = Field(None, pattern=NAME_PATTERN)
