"""Where an update keeps its files, and the journal that lets every step survive ``kill -9``.

Under the agent's state folder::

    versions/<version>/           a virtualenv with that release installed
    versions/<version>/.installed written last: without it the folder is a partial install
    versions/current -> <version> the version the launcher runs (absent: the launcher's own install)
    versions/previous -> <version> the one before it, kept for rollback
    update/staged.json            an update waiting for the launcher (verified when staged)
    update/incoming/<version>.zip its bundle
    update/pending.json           the journal: which step of which update was reached
    update/result.json            how the last update ended (reported to the hub later)
    update/result-reported.json   the ``at`` of the result the hub was told (update/receive.py)
    update/welcome-<version>      written by that version when the hub welcomed it

Every file is written to a temporary name, flushed and renamed over the old one; a symlink is
replaced by renaming a new one over it. A reader sees the old or the new content, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from protocol.errors import IllegalTransition

CURRENT = "current"
PREVIOUS = "previous"
INSTALLED_MARK = ".installed"


class Step(StrEnum):
    """The steps of one update, in order; the journal names the one reached."""

    INSTALLING = "installing"  # the new version's virtualenv is being built
    SWITCHING = "switching"  # current/previous are being moved to the new version
    PROBATION = "probation"  # the new version runs; it has until the deadline to reach welcome
    ROLLING_BACK = "rolling_back"  # current/previous are being moved back


_MOVES: dict[Step | None, set[Step | None]] = {
    None: {Step.INSTALLING},
    Step.INSTALLING: {Step.INSTALLING, Step.SWITCHING, None},  # retry, go on, or give up
    Step.SWITCHING: {Step.PROBATION, Step.ROLLING_BACK},
    Step.PROBATION: {Step.PROBATION, Step.ROLLING_BACK, None},  # restarted, failed, or welcomed
    Step.ROLLING_BACK: {None},
}


def move(current: Step | None, target: Step | None) -> Step | None:
    """``target`` if an update may go there from ``current`` (None: no update under way), else raise."""
    if target not in _MOVES[current]:
        raise IllegalTransition(f"an update cannot go from {current} to {target}")
    return target


@dataclass(frozen=True, slots=True)
class Pending:
    """The journal of the update under way (``update/pending.json``)."""

    version: str
    step: Step
    # What current and previous pointed at before the switch (None: the launcher's own install).
    old_current: str | None
    old_previous: str | None
    attempts: int = 1  # installs started for this version: bounded (install.MAX_ATTEMPTS)
    probations: int = 0  # starts of the new version on probation: bounded likewise
    reason: str = ""  # why it is rolling back
    started_at: float = field(default_factory=time.time)

    def to(self, step: Step, **changes: Any) -> Pending:
        move(self.step, step)
        return replace(self, step=step, **changes)


@dataclass(frozen=True, slots=True)
class Staged:
    """An update verified and waiting for the launcher (``update/staged.json``)."""

    version: str
    bundle: str  # file name under update/incoming/
    sha256: str
    signature: str
    allow_downgrade: bool = False


@dataclass(frozen=True)
class Layout:
    """The paths of the update machinery under one agent state folder."""

    state_dir: Path

    @property
    def versions(self) -> Path:
        return self.state_dir / "versions"

    @property
    def update(self) -> Path:
        return self.state_dir / "update"

    @property
    def incoming(self) -> Path:
        return self.update / "incoming"

    @property
    def journal(self) -> Path:
        return self.update / "pending.json"

    @property
    def staged(self) -> Path:
        return self.update / "staged.json"

    @property
    def result(self) -> Path:
        return self.update / "result.json"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def welcome_marker(self, version: str) -> Path:
        return self.update / f"welcome-{version}"

    def is_installed(self, version: str) -> bool:
        return (self.version_dir(version) / INSTALLED_MARK).is_file()

    def pointer(self, name: str) -> str | None:
        """The version ``current`` or ``previous`` names; None when absent (the launcher's own install)."""
        try:
            return os.readlink(self.versions / name)
        except (FileNotFoundError, OSError):
            return None

    def set_pointer(self, name: str, version: str | None) -> None:
        """Point ``name`` at ``version`` atomically (rename a new symlink over it); None removes it."""
        link = self.versions / name
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        else:
            self.versions.mkdir(parents=True, exist_ok=True)
            temporary = self.versions / f".{name}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.symlink(version, temporary)  # relative: the state folder may move
            os.replace(temporary, link)
        sync_folder(self.versions)

    # The journal, the staged update and the result

    def read_pending(self) -> Pending | None:
        body = read_json(self.journal)
        if body is None:
            return None
        return Pending(**{**body, "step": Step(body["step"])})

    def write_pending(self, pending: Pending | None) -> None:
        if pending is None:
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()
            sync_folder(self.update)
        else:
            write_json(self.journal, asdict(pending))

    def write_staged(self, staged: Staged) -> None:
        write_json(self.staged, asdict(staged))

    def read_staged(self) -> Staged | None:
        """The staged update; one whose file cannot be read is dropped (it is written whole or not
        at all, so only a hand-made or damaged file gets here) rather than stop the launcher."""
        try:
            body = read_json(self.staged)
            return Staged(**body) if body is not None else None
        except (ValueError, TypeError):
            self.staged.unlink(missing_ok=True)
            return None

    def clear_staged(self, staged: Staged) -> None:
        """Forget ``staged`` and its bundle (not an update staged since in its place)."""
        now = self.read_staged()
        if now == staged:
            self.staged.unlink(missing_ok=True)
        if now is None or now == staged or now.bundle != staged.bundle:
            (self.incoming / staged.bundle).unlink(missing_ok=True)
        sync_folder(self.update)

    def write_result(self, status: str, version: str, **details: Any) -> None:
        write_json(self.result, {"status": status, "version": version, "at": time.time(), **details})

    def read_result(self) -> dict[str, Any] | None:
        return read_json(self.result)


def write_json(path: Path, body: dict[str, Any]) -> None:
    """Replace ``path`` with ``body`` whole: a temporary file, fsync, rename, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as handle:
        json.dump(body, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_folder(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return body if isinstance(body, dict) else None


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_welcome(state_dir: Path, version: str) -> None:
    """Called by a running agent when the hub welcomes it: the launcher's probation ends well.

    Only when a launcher manages this state folder (``update/`` exists); a plain ``run`` leaves
    no file behind.
    """
    layout = Layout(state_dir)
    marker = layout.welcome_marker(version)
    if layout.update.is_dir() and not marker.exists():
        marker.touch()
