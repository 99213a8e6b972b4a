"""``monitor-agent launch``: the process systemd starts; it runs the agent and owns every update.

The launcher runs ``releases/current/bin/monitor-agent run ARGS`` (its own install's agent when
no update was ever applied) as a child and waits. When an update is staged (``update/staged.json``)
it installs it beside the running child, stops the child, switches ``current`` and starts the new
version on probation: the new agent must write ``update/welcome-<version>`` (it does when the hub
welcomes it) before the deadline. If it exits first, or the deadline passes, the launcher restores
the previous version, starts it, and records ``update_failed`` in ``update/result.json``.

When the child exits on its own the launcher exits with its status, so systemd's ``Restart=``
policy applies as before. The launcher itself is never updated: it is the small, stable part.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import FrameType

from monitor_agent.update.install import Checkpoint, Updater, _no_checkpoint
from monitor_agent.update.receive import LAUNCHER_KEY_ENV
from monitor_agent.update.state import CURRENT, OLD_RELEASES, RELEASES, Layout, Pending, Rollback, Staged

log = logging.getLogger("monitor_agent.launcher")

DEFAULT_DEADLINE = 60.0
POLL = 0.1  # how often the launcher looks at its child, the welcome file and staged updates
STOP_TIMEOUT = 10.0  # SIGTERM, then this long to flush and close, then SIGKILL


class Watch(Enum):
    WELCOMED = "welcomed"
    EXITED = "exited"
    DEADLINE = "deadline"
    STAGED = "staged"
    STOPPING = "stopping"


@dataclass(frozen=True)
class LaunchSettings:
    state_dir: Path
    agent_args: tuple[str, ...]  # given to ``monitor-agent run`` as they are
    own_version: str
    release_key: bytes | None
    deadline: float = DEFAULT_DEADLINE


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the launcher dies, even by SIGKILL (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Launcher:
    def __init__(self, settings: LaunchSettings, checkpoint: Checkpoint = _no_checkpoint) -> None:
        self.settings = settings
        self.layout = Layout(settings.state_dir)
        self.updater = Updater(self.layout, settings.own_version, settings.release_key, checkpoint)
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def child_argv(self) -> list[str]:
        current = self.layout.pointer(CURRENT)
        if current is not None and not self.layout.is_installed(current):
            log.error("releases/current names %s, which is not installed: running this install", current)
            current = None
        if current is None:
            return [sys.executable, "-m", "monitor_agent", "run", *self.settings.agent_args]
        # The script run by the install's own interpreter rather than through its #! line: that line
        # names the folder the install was made in, which an older layout's rename moved (state.py).
        bin_dir = self.layout.releases / CURRENT / "bin"
        return [str(bin_dir / "python"), str(bin_dir / "monitor-agent"), "run", *self.settings.agent_args]

    def run(self) -> int:
        """Until the child exits on its own (its status) or the launcher is told to stop (0)."""
        if self.layout.adopt_old_layout():
            log.warning("moved %s to %s (the installs' folder was renamed)", OLD_RELEASES, RELEASES)
        self.layout.update.mkdir(parents=True, exist_ok=True)
        self._handle_signals()
        pending = self.updater.recover()
        while not self.stopping:
            if self.child is None:
                if pending is not None:
                    pending = self.updater.start_probation(pending)
                try:
                    self._start()
                except OSError as exc:
                    if pending is None:
                        raise  # the version we go back to does not start: nothing to fall back on
                    self.updater.roll_back(
                        pending,
                        Rollback.START_FAILED,
                        f"the new version did not start: {exc}",
                        self._staged(pending),
                    )
                    pending = None
                    continue
            if pending is not None:
                pending = self._probation(pending)
                continue
            outcome = self._watch(None)
            if outcome is Watch.EXITED:
                return self._status()
            if outcome is Watch.STAGED:
                pending = self._update()
        self._stop_child()
        return 0

    # One update

    def _update(self) -> Pending | None:
        """Install the staged release while the child runs, then stop the child and switch."""
        staged = self.layout.read_staged()
        if staged is None:
            return None
        log.info("installing update %s beside the running version", staged.version)
        installed = self.updater.install_staged(staged)
        if installed is None or self.stopping:
            return None  # refused or failed (recorded); or stopping: the journal resumes it
        self._stop_child()
        return self.updater.switch(installed)

    def _probation(self, pending: Pending) -> Pending | None:
        """Watch the new version until welcome (keep it), exit or deadline (roll back)."""
        outcome = self._watch(pending)
        if outcome is Watch.STOPPING:
            return pending  # the next start of the launcher resumes the probation
        staged = self._staged(pending)
        if outcome is Watch.WELCOMED:
            log.info("update to %s done: the hub welcomed it", pending.version)
            self.updater.succeed(pending, staged)
            return None
        if outcome is Watch.EXITED:
            code = Rollback.EXITED
            reason = f"the new version exited with status {self._status()} before reaching welcome"
        else:
            code = Rollback.NO_WELCOME
            reason = f"the new version did not reach welcome within {self.settings.deadline:g}s"
        self._stop_child()
        self.updater.roll_back(pending, code, reason, staged)
        return None

    def _staged(self, pending: Pending) -> Staged | None:
        staged = self.layout.read_staged()
        return staged if staged is not None and staged.version == pending.version else None

    def _watch(self, pending: Pending | None) -> Watch:
        """Wait for the first thing the launcher must act on."""
        assert self.child is not None
        deadline = time.monotonic() + self.settings.deadline
        marker = self.layout.welcome_marker(pending.version) if pending is not None else None
        while True:
            if self.stopping:
                return Watch.STOPPING
            if marker is not None and marker.exists():
                return Watch.WELCOMED
            try:
                self.child.wait(POLL)
            except subprocess.TimeoutExpired:
                pass
            else:
                return Watch.EXITED
            if pending is None and self.layout.staged.exists():
                return Watch.STAGED
            if pending is not None and time.monotonic() > deadline:
                return Watch.DEADLINE

    # The child

    def _start(self) -> None:
        argv = self.child_argv()
        log.info("starting %s", " ".join(argv[: argv.index("run") + 1]))
        env = dict(os.environ)
        if self.settings.release_key is not None:  # the agent takes updates the hub offers (receive.py)
            env[LAUNCHER_KEY_ENV] = self.settings.release_key.decode()
        self.child = subprocess.Popen(  # noqa: S603 - the agent we installed, with our own arguments
            argv, preexec_fn=_die_with_parent if sys.platform == "linux" else None, env=env
        )

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _status(self) -> int:
        child, self.child = self.child, None
        code = child.returncode if child is not None else 0
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says

    def _handle_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stopping = True
            if self.child is not None and self.child.poll() is None:
                self.child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)


def launch(settings: LaunchSettings) -> int:
    """Blocking entry point of ``monitor-agent launch``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Launcher(settings).run()
