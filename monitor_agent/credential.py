"""This device's credential, kept in the state folder (DESIGN §10): enrollment, rotation, fallback.

``<state>/credential`` holds the newest credential the agent saved; during a rotation the one it
replaced is kept in ``<state>/credential.previous``. Each is written whole or not at all (a
temporary file, fsync, rename, fsync of the folder), readable by the agent's user only (0600),
so a kill -9 or a power cut at any point leaves a credential the hub accepts:

- the hub sends a new credential and keeps the old one working until the agent answers
  ``credential_saved``, which it sends only after both files are on disk;
- the agent presents the newest credential and, if the hub refuses it, the previous one. When
  the previous one is accepted the newest never reached the hub's store as live or pending (a
  rotation that did not complete there): it is dropped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CREDENTIAL_FILE = "credential"
PREVIOUS_FILE = "credential.previous"


def write_secret(path: Path, secret: str) -> None:
    """Replace ``path`` with ``secret`` atomically and durably, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        if hasattr(os, "fchmod"):  # a temporary file left by a crash kept its old mode
            os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    _sync_folder(path.parent)


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class CredentialStore:
    """The credential files of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / CREDENTIAL_FILE
        self.previous_path = state_dir / PREVIOUS_FILE

    def newest(self) -> str | None:
        return read_secret(self.path)

    def previous(self) -> str | None:
        return read_secret(self.previous_path)

    def keep(self, secret: str) -> None:
        """Enrollment: ``secret`` is this device's only credential."""
        write_secret(self.path, secret)
        self.previous_path.unlink(missing_ok=True)
        _sync_folder(self.path.parent)

    def save(self, secret: str) -> None:
        """Rotation: ``secret`` becomes the newest, the current one is kept as the previous.

        Killed between the two writes, both files hold the current credential: still accepted.
        """
        current = self.newest()
        if current == secret:
            return
        if current is not None:
            write_secret(self.previous_path, current)
        write_secret(self.path, secret)

    def drop_newest(self) -> None:
        """The hub refused the newest and accepted the previous one: the previous is the credential."""
        previous = self.previous()
        if previous is None:
            return
        write_secret(self.path, previous)
        self.previous_path.unlink(missing_ok=True)
        _sync_folder(self.path.parent)


class Credentials:
    """What this agent presents: its kept credential (newest, then previous) or the legacy token.

    Files are read at each connection attempt, so ``monitor-agent enroll`` run beside a running
    daemon (one that used the legacy token, too) takes effect at its next connection.
    """

    def __init__(self, legacy_token: str, store: CredentialStore | None = None) -> None:
        self.legacy_token = legacy_token
        self.store = store
        self._fallback = False  # presenting the previous credential: the newest was refused

    @property
    def device_credential(self) -> bool:
        """True when a device credential is kept (else the legacy token is presented)."""
        store = self.store
        return store is not None and (store.newest() is not None or store.previous() is not None)

    def current(self) -> str:
        if self.store is None:
            return self.legacy_token
        newest, previous = self.store.newest(), self.store.previous()
        if self._fallback and previous is not None:
            return previous
        return newest or previous or self.legacy_token

    def headers(self) -> dict[str, str]:
        """A device credential as ``Authorization: Bearer``; the legacy token as the seed sent it."""
        if not self.device_credential:
            return {"X-Auth-Token": self.legacy_token}
        return {"Authorization": f"Bearer {self.current()}"}

    def refused(self) -> bool:
        """The hub refused what was presented; True if the previous credential is to be tried now."""
        if self.store is None or self._fallback or not self.device_credential:
            self._fallback = False
            return False
        previous = self.store.previous()
        if previous is None or previous == self.store.newest():
            return False
        self._fallback = True
        return True

    def accepted(self) -> None:
        """The hub accepted what was presented; a refused newest credential is forgotten."""
        if self._fallback and self.store is not None:
            self.store.drop_newest()
        self._fallback = False

    def save(self, secret: str) -> None:
        """Keep a rotated credential (blocking: fsync); present it from the next connection on."""
        if self.store is None or not self.device_credential:
            raise OSError("this agent uses the legacy token: it keeps no device credential")
        self.store.save(secret)
        self._fallback = False
