"""The shared secret agents and scripts present: configured, or generated once and kept on disk."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from monitor_server.settings import Settings

log = logging.getLogger("monitor_server.token")

WELL_KNOWN = frozenset({"dev-token-123", "changeme", "token", "secret"})
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True)
class ResolvedToken:
    value: str
    source: str  # "configured", "generated" or the file it was read from
    insecure: bool

    def matches(self, presented: str | None) -> bool:
        """Constant-time comparison; a missing token never matches."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.value.encode())


class UnusableToken(ValueError):
    """The configured token could never be presented by a client."""


def configured_token(settings: Settings) -> str | None:
    """``MONITOR_TOKEN`` / ``EXPECTED_TOKEN``, if set; refused when no client could ever send it.

    HTTP drops the spaces around a header value (and the login form strips them), so a token
    with leading or trailing whitespace would never match: better to refuse to start.
    """
    value = settings.token.get_secret_value() if settings.token is not None else ""
    if not value:
        return None
    if value != value.strip() or not value.isprintable():
        raise UnusableToken(
            "the configured token (MONITOR_TOKEN or EXPECTED_TOKEN) has leading or trailing "
            "whitespace or a control character (a newline?), so no client could ever present it; "
            "remove them"
        )
    return value


def resolve_token(settings: Settings) -> ResolvedToken:
    """Use the configured token, else the one kept in the data folder, else make and keep one."""
    value = configured_token(settings)
    if value is not None:
        return ResolvedToken(value, "configured", value in WELL_KNOWN or len(value) < 12)
    path = settings.token_dir / TOKEN_FILE
    value, created = kept_secret(path)
    return ResolvedToken(value, "generated" if created else str(path), False)


def kept_secret(path: Path) -> tuple[str, bool]:
    """The secret stored at ``path``, or a new random one written there (mode 0600); True if new."""
    if path.exists():
        return path.read_text().strip(), False
    return _generate(path), True


def _generate(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
