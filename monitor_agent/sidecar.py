"""One agent process started next to a hub (``make run``), so the dashboard has a device at once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def start_sidecar(
    server: str, token: str, state_dir: Path, ca_file: Path | None = None
) -> subprocess.Popen[bytes] | None:
    """Start ``python -m monitor_agent`` against ``server``; None (and a warning) if it cannot start."""
    env = {**os.environ, "MONITOR_AGENT_TOKEN": token}  # not on the command line: ps shows argv
    if ca_file is not None:
        env["MONITOR_AGENT_CA_FILE"] = str(ca_file)
    argv = [sys.executable, "-m", "monitor_agent", "run", "--server", server, "--state-dir", str(state_dir)]
    try:
        proc = subprocess.Popen(argv, env=env)  # noqa: S603 - our own interpreter and module
    except OSError as exc:
        log.warning("could not start the local agent: %s", exc)
        return None
    log.info("local agent started (pid %d, state in %s)", proc.pid, state_dir)
    return proc


def stop_sidecar(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM (the agent flushes and closes with 1000), SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
