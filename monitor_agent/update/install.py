"""Verify, stage, install and switch a release; each step journaled so ``kill -9`` can be repaired.

``stage`` checks a bundle (hash, signature, version, platform) before anything is written, then
hands it to the launcher. ``Updater`` does the rest, always in the launcher process: installs the
release beside the running one (``releases/<version>/``, a virtualenv filled from the bundle's
wheels with no package index), moves ``current``/``previous``, and on failure moves them back.
``recover`` finishes or undoes whatever step a killed launcher left in ``update/pending.json``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from monitor_agent.update.state import (
    CURRENT,
    INSTALLED_MARK,
    PREVIOUS,
    Layout,
    Pending,
    Rollback,
    Staged,
    Step,
    move,
    sync_folder,
)
from protocol.release import (
    Manifest,
    Refusal,
    ReleaseRefused,
    check_platform,
    check_upgrade,
    extract_wheels,
    read_manifest,
    verify_file,
)

log = logging.getLogger(__name__)

DISTRIBUTION = "monitor"
MAX_ATTEMPTS = 3  # installs or probations of one version interrupted this often: give up on it
INSTALL_TIMEOUT = 600.0

# A hook for tests: called with a checkpoint name after each durable step (kill -9 goes there).
Checkpoint = Callable[[str], None]


def _no_checkpoint(name: str) -> None:
    return None


def this_platform() -> tuple[str, str]:
    """(``major.minor``, ``sysconfig.get_platform()``): what a bundle must have been built for."""
    return f"{sys.version_info.major}.{sys.version_info.minor}", sysconfig.get_platform()


def running_version(layout: Layout, own_version: str) -> str:
    """The version ``current`` names, or the launcher's own when no update was ever applied."""
    return layout.pointer(CURRENT) or own_version


def check_bundle(
    bundle: Path, sha256: str, signature: str, public_key: bytes | None, running: str, allow_downgrade: bool
) -> Manifest:
    """Everything a bundle must pass before it is unpacked; raises ``ReleaseRefused`` naming why."""
    if public_key is None:
        raise ReleaseRefused(Refusal.NO_KEY, "no release key is configured: every update is refused")
    verify_file(bundle, sha256, signature, public_key)
    manifest = read_manifest(bundle)
    check_platform(manifest, *this_platform())
    check_upgrade(running, manifest.version, allow_downgrade)
    return manifest


def stage(
    layout: Layout,
    bundle: Path,
    sha256: str,
    signature: str,
    public_key: bytes | None,
    own_version: str,
    allow_downgrade: bool = False,
) -> Staged:
    """Verify ``bundle`` and leave it for the launcher (``update/staged.json``), or refuse it.

    The copy is what gets verified (a file changed after its check is never staged); it replaces
    an update staged earlier and not yet started, and is refused while one is under way, unless
    it is that very release (offered again when the agent reconnects: a restart or a ``kill -9``
    mid-install), which is already on its way and is not a failure to report.
    """
    if (pending := layout.read_pending()) is not None:
        under_way = layout.read_staged()
        if (
            under_way is not None
            and under_way.version == pending.version
            and under_way.sha256 == sha256.lower()
        ):
            return under_way
        raise ReleaseRefused(Refusal.BUSY, f"the update to {pending.version} is at {pending.step}")
    layout.incoming.mkdir(parents=True, exist_ok=True)
    partial = layout.incoming / f".{bundle.name}.{os.getpid()}.partial"
    try:
        shutil.copyfile(bundle, partial)
        manifest = check_bundle(
            partial, sha256, signature, public_key, running_version(layout, own_version), allow_downgrade
        )
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        name = f"{manifest.version}.zip"
        os.replace(partial, layout.incoming / name)
    finally:
        partial.unlink(missing_ok=True)
    staged = Staged(manifest.version, name, sha256.lower(), signature, allow_downgrade)
    layout.write_staged(staged)
    for other in layout.incoming.iterdir():  # bundles of updates staged before and replaced
        if other.name != name:
            other.unlink(missing_ok=True)
    return staged


class Updater:
    """Applies one staged update at a time, in the launcher; every step is journaled first."""

    def __init__(
        self,
        layout: Layout,
        own_version: str,
        public_key: bytes | None,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> None:
        self.layout = layout
        self.own_version = own_version
        self.public_key = public_key
        self.checkpoint = checkpoint

    # Install

    def install_staged(self, staged: Staged) -> Pending | None:
        """Check ``staged`` and install it beside the running version (which keeps running).

        Returns the journal, ready to ``switch``; or None, with the result recorded, when the
        bundle is refused or does not install.
        """
        layout = self.layout
        bundle = layout.incoming / staged.bundle
        before = layout.read_pending()
        attempts = before.attempts + 1 if before is not None and before.version == staged.version else 1
        try:
            running = running_version(layout, self.own_version)
            manifest = check_bundle(
                bundle, staged.sha256, staged.signature, self.public_key, running, staged.allow_downgrade
            )
        except (ReleaseRefused, OSError) as exc:
            code, reason = (
                (exc.code, exc.reason) if isinstance(exc, ReleaseRefused) else (Refusal.BAD_BUNDLE, str(exc))
            )
            log.error("update to %s refused: %s", staged.version, exc)
            layout.clear_staged(staged)
            layout.write_result("refused", staged.version, code=str(code), reason=reason)
            layout.write_pending(None)
            return None
        if attempts > MAX_ATTEMPTS:
            self._give_up(staged, f"the install was interrupted {MAX_ATTEMPTS} times")
            return None
        pending = Pending(
            manifest.version,
            Step.INSTALLING,
            old_current=layout.pointer(CURRENT),
            old_previous=layout.pointer(PREVIOUS),
            attempts=attempts,
        )
        layout.write_pending(pending)
        self.checkpoint("installing")
        try:
            self._install(bundle, manifest)
        except (ReleaseRefused, OSError, subprocess.SubprocessError) as exc:
            log.error("update to %s failed to install: %s", manifest.version, exc)
            self._remove_version(manifest.version)
            self._give_up(staged, f"install failed: {exc}")
            return None
        self.checkpoint("installed")
        return pending

    def _give_up(self, staged: Staged, reason: str) -> None:
        self.layout.clear_staged(staged)
        self.layout.write_result("update_failed", staged.version, code="install_failed", reason=reason)
        self.layout.write_pending(None)

    def _install(self, bundle: Path, manifest: Manifest) -> None:
        """A virtualenv at ``releases/<version>`` with the bundle installed, marked complete last."""
        target = self.layout.version_dir(manifest.version)
        if self.layout.is_installed(manifest.version):
            return  # complete (the mark is written last): kept previous, or an interrupted update
        self._remove_version(manifest.version)  # a partial one from an interrupted attempt
        wheels = self.layout.update / f"wheels-{manifest.version}"
        shutil.rmtree(wheels, ignore_errors=True)
        extract_wheels(bundle, wheels)
        try:
            # No pip inside: the launcher's pip installs into it (--python), a second faster.
            _run([sys.executable, "-m", "venv", "--without-pip", str(target)])
            self.checkpoint("venv")
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--python",
                    str(target / "bin" / "python"),
                    "install",
                    "--quiet",
                    "--no-index",  # everything comes from the bundle: no network, no index
                    "--no-compile",  # a second faster; the first start compiles what it imports
                    "--find-links",
                    str(wheels),
                    f"{DISTRIBUTION}=={manifest.version}",
                ]
            )
            _run([str(target / "bin" / "monitor-agent"), "--version"])
        finally:
            shutil.rmtree(wheels, ignore_errors=True)
        (target / INSTALLED_MARK).write_text(manifest.version + "\n")
        sync_folder(target)

    def _remove_version(self, version: str) -> None:
        if version in {CURRENT, PREVIOUS} or version in self._live():
            return  # never the one running or the one to go back to
        shutil.rmtree(self.layout.version_dir(version), ignore_errors=True)

    def _live(self) -> set[str]:
        return {v for v in (self.layout.pointer(CURRENT), self.layout.pointer(PREVIOUS)) if v}

    # Switch and roll back

    def switch(self, pending: Pending) -> Pending:
        """previous := the old current, current := the new version; the journal ends at PROBATION."""
        if pending.step is not Step.SWITCHING:
            pending = pending.to(Step.SWITCHING)
        self.layout.write_pending(pending)
        self.checkpoint("switching")
        self.layout.set_pointer(PREVIOUS, pending.old_current)
        self.checkpoint("switched-previous")
        self.layout.set_pointer(CURRENT, pending.version)
        probation = pending.to(Step.PROBATION)
        self.layout.write_pending(probation)
        self.checkpoint("probation")
        return probation

    def start_probation(self, pending: Pending) -> Pending:
        """Before each start of the new version: count the start, forget an old welcome."""
        self.layout.welcome_marker(pending.version).unlink(missing_ok=True)
        pending = pending.to(Step.PROBATION, probations=pending.probations + 1)
        self.layout.write_pending(pending)
        return pending

    def succeed(self, pending: Pending, staged: Staged | None) -> None:
        """The new version reached welcome: keep it, prune older versions, then record and forget."""
        move(pending.step, None)
        if staged is not None:
            self.layout.clear_staged(staged)
        self.prune()
        # The result last: whoever reads it finds the update's files in their final state.
        self.layout.write_result("installed", pending.version, previous=pending.old_current)
        self.layout.write_pending(None)

    def roll_back(self, pending: Pending, code: Rollback, reason: str, staged: Staged | None) -> None:
        """Restore current and previous as they were, record ``update_failed``, drop the new version."""
        rolling = pending.to(Step.ROLLING_BACK, code=code.value, reason=reason)
        self.layout.write_pending(rolling)
        self.checkpoint("rolling_back")
        self._finish_rollback(rolling, staged)

    def _finish_rollback(self, rolling: Pending, staged: Staged | None) -> None:
        self.layout.set_pointer(CURRENT, rolling.old_current)
        self.layout.set_pointer(PREVIOUS, rolling.old_previous)
        if staged is not None:
            self.layout.clear_staged(staged)
        self._remove_version(rolling.version)
        back_to = rolling.old_current or self.own_version
        self.layout.write_result(
            "update_failed",
            rolling.version,
            code=rolling.code or "rolled_back",  # a journal written without a code
            reason=rolling.reason,
            rolled_back_to=back_to,
        )
        self.layout.write_pending(None)
        log.error("update to %s rolled back to %s: %s", rolling.version, back_to, rolling.reason)

    def prune(self) -> None:
        """Delete installed versions other than current and previous (and stray temporary links)."""
        if not self.layout.releases.is_dir():
            return
        keep = self._live()
        for entry in self.layout.releases.iterdir():
            if entry.name in {CURRENT, PREVIOUS} or entry.name in keep:
                continue
            if entry.is_symlink() or entry.is_file():
                entry.unlink(missing_ok=True)
            else:
                shutil.rmtree(entry, ignore_errors=True)

    # After kill -9

    def recover(self) -> Pending | None:
        """Finish or undo the step a killed launcher left; returns the journal if on PROBATION."""
        pending = self.layout.read_pending()
        if pending is None:
            return None
        log.warning("repairing an update to %s interrupted at %s", pending.version, pending.step)
        staged = self.layout.read_staged()
        if staged is not None and staged.version != pending.version:
            staged = None  # staged after this update began: the next one
        if pending.step is Step.INSTALLING:
            # Not live yet: drop a partial install; the staged update is tried again (bounded).
            if staged is None or not self.layout.is_installed(pending.version):
                self._remove_version(pending.version)
            if staged is None:  # nothing to resume
                self.layout.write_pending(None)
            return None
        if pending.step is Step.SWITCHING:
            if not self.layout.is_installed(pending.version):  # cannot happen unless files vanished
                self.roll_back(
                    pending, Rollback.INSTALL_MISSING, "the new version's install is missing", staged
                )
                return None
            return self.switch(pending)  # both pointer moves are idempotent: do them again
        if pending.step is Step.ROLLING_BACK:
            self._finish_rollback(pending, staged)
            return None
        if not self.layout.is_installed(pending.version):
            self.roll_back(pending, Rollback.INSTALL_MISSING, "the new version's install is missing", staged)
            return None
        if pending.probations >= MAX_ATTEMPTS:
            reason = f"the launcher was stopped {MAX_ATTEMPTS} times during probation"
            self.roll_back(pending, Rollback.INTERRUPTED, reason, staged)
            return None
        return pending  # PROBATION: start the new version again and watch it


def _run(argv: list[str]) -> None:
    # pip's configuration files (an index, constraints) have no say: the bundle is the whole truth.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(  # noqa: S603 - our own interpreter, pip and the installed agent
        argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False, env=env
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise OSError(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} exited {done.returncode}: {' '.join(detail)}"
        )
