"""Where an update keeps its files, and the journal that lets every step survive ``kill -9``.

Under the agent's state folder::

    releases/<version>/           a virtualenv with that release installed
    releases/<version>/.installed written last: without it the folder is a partial install
    releases/current -> <version> the version the launcher runs (absent: the launcher's own install)
    releases/previous -> <version> the one before it, kept for rollback
    update/staged.json            an update waiting for the launcher (verified when staged)
    update/incoming/<version>.zip its bundle
    update/pending.json           the journal: which step of which update was reached
    update/result.json            how the last update ended (reported to the hub later)
    update/result-reported.json   the ``at`` of the result the hub was told (update/receive.py)
    update/welcome-<version>      written by that version when the hub welcomed it

Every file is written to a temporary name, flushed and renamed over the old one; a symlink is
replaced by renaming a new one over it. A reader sees the old or the new content, never a torn one.

The launcher's first builds kept the installs under ``versions/``: ``Layout.adopt_old_layout``
renames that folder to ``releases/`` once (the launcher calls it at start). The pointers are
relative and the launcher runs an install through its ``bin/python``, so a renamed virtualenv
keeps working.
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

RELEASES = "releases"  # <state>/releases/<version>/: the installed releases
OLD_RELEASES = "versions"  # their folder's name in the first builds (moved by Layout.adopt_old_layout)
CURRENT = "current"
PREVIOUS = "previous"
INSTALLED_MARK = ".installed"


class Rollback(StrEnum):
    """Why a new version was rolled back: the code reported after ``update_failed: ``."""

    EXITED = "exited"  # it exited before reaching welcome
    NO_WELCOME = "no_welcome"  # it ran but did not reach welcome within the deadline
    START_FAILED = "start_failed"  # it could not be started at all
    INSTALL_MISSING = "install_missing"  # its folder vanished between install and start
    INTERRUPTED = "interrupted"  # the launcher was stopped on its probation too often


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
    code: str = ""  # why, as a ``Rollback`` code (set with ``reason``)
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
    def releases(self) -> Path:
        return self.state_dir / RELEASES

    def adopt_old_layout(self) -> bool:
        """Rename ``versions/`` (the first builds' name) to ``releases/`` if only the old one exists.

        One ``rename``: a reader sees the folder under one name or the other, never half moved; a
        launcher killed around it finds either name and does the right thing at its next start.
        Returns whether it moved anything.
        """
        old = self.state_dir / OLD_RELEASES
        if not old.is_dir() or old.is_symlink() or os.path.lexists(self.releases):
            return False
        os.rename(old, self.releases)
        sync_folder(self.state_dir)
        return True

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
        return self.releases / version

    def welcome_marker(self, version: str) -> Path:
        return self.update / f"welcome-{version}"

    def is_installed(self, version: str) -> bool:
        return (self.version_dir(version) / INSTALLED_MARK).is_file()

    def pointer(self, name: str) -> str | None:
        """The version ``current`` or ``previous`` names; None when absent (the launcher's own install)."""
        try:
            return os.readlink(self.releases / name)
        except (FileNotFoundError, OSError):
            return None

    def set_pointer(self, name: str, version: str | None) -> None:
        """Point ``name`` at ``version`` atomically (rename a new symlink over it); None removes it."""
        link = self.releases / name
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        else:
            self.releases.mkdir(parents=True, exist_ok=True)
            temporary = self.releases / f".{name}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.symlink(version, temporary)  # relative: the state folder may move
            os.replace(temporary, link)
        sync_folder(self.releases)

    # The journal, the staged update and the result

    def read_pending(self) -> Pending | None:
        body = read_json(self.journal)
        if body is None:
            return None
        known = {name: body[name] for name in Pending.__dataclass_fields__ if name in body}
        return Pending(**{**known, "step": Step(body["step"])})  # a field added later: ignored

    def write_pending(self, pending: Pending | None) -> None:
        if pending is None:
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()
            sync_folder(self.update)
        else:
            body = asdict(pending)
            if not body["code"]:  # only while rolling back: a running agent built before it reads this
                del body["code"]
            write_json(self.journal, body)

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
