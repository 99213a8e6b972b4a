"""The ``monitor-server`` process: clean exits on signals, a failing exit when it cannot start."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import HubProcess, free_port
from tests.timing import t

TOKEN = "process-token-7e21c4"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_hub_with_status_zero(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT shuts the hub down gracefully and the process exits 0, no traceback."""
    process = HubProcess(tmp_path / "monitor.db", free_port(), TOKEN)
    await process.start()
    assert process.proc is not None
    process.proc.send_signal(sig)
    assert process.proc.wait(timeout=t(10)) == 0
    log = (tmp_path / "hub.log").read_text()
    assert "Traceback" not in log
    assert "Application shutdown complete" in log


def test_port_in_use_exits_non_zero(tmp_path: Path) -> None:
    """A hub that cannot bind its port says so and exits with a failure status."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "MONITOR_TOKEN": TOKEN,
            "MONITOR_DB": str(tmp_path / "m.db"),
            "MONITOR_PORT": str(port),
            "PATH": "/usr/bin:/bin",
        }
        done = subprocess.run(
            [sys.executable, "-m", "monitor_server"],
            env=env,
            capture_output=True,
            text=True,
            timeout=t(30),
            check=False,
        )
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower()
