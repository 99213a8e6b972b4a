"""``make run`` starts its local agent as another program, by its console script, token off argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor_server import quickstart


def _fake_interpreter(folder: Path, *, with_script: bool) -> Path:
    folder.mkdir()
    python = folder / "python"
    python.write_text("")
    if with_script:
        script = folder / "monitor-agent"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
    return python


@pytest.mark.skipif(sys.platform == "win32", reason="console scripts are .exe files there")
def test_agent_is_the_console_script_beside_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent is started as ``<venv>/bin/monitor-agent``, not found anywhere else on PATH."""
    python = _fake_interpreter(tmp_path / "bin", with_script=True)
    monkeypatch.setattr(sys, "executable", str(python))
    assert quickstart.agent_command() == [str(tmp_path / "bin" / "monitor-agent")]


def test_agent_falls_back_to_the_module_without_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source tree never pip-installed has no script: ``python -m monitor_agent`` instead."""
    python = _fake_interpreter(tmp_path / "bin", with_script=False)
    monkeypatch.setattr(sys, "executable", str(python))
    assert quickstart.agent_command() == [str(python), "-m", "monitor_agent"]


def test_token_travels_in_the_environment_not_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ps`` shows argv to every user, so the token and CA go in the agent's environment."""
    seen: dict[str, Any] = {}

    class FakePopen:
        pid = 4242

        def __init__(self, argv: list[str], env: dict[str, str]) -> None:
            seen.update(argv=argv, env=env)

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    proc = quickstart.start_agent("http://127.0.0.1:1", "s3cret-token", tmp_path, ca_file=tmp_path / "ca.pem")
    assert proc is not None
    assert "s3cret-token" not in " ".join(seen["argv"])
    assert seen["argv"][-4:] == ["--server", "http://127.0.0.1:1", "--state-dir", str(tmp_path)]
    assert seen["env"]["MONITOR_AGENT_TOKEN"] == "s3cret-token"
    assert seen["env"]["MONITOR_AGENT_CA_FILE"] == str(tmp_path / "ca.pem")


def test_agent_that_cannot_start_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub still runs when the agent cannot be started; nothing to stop afterwards."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError("monitor-agent")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    assert quickstart.start_agent("http://127.0.0.1:1", "t", tmp_path) is None
    quickstart.stop_agent(None)


def test_stop_agent_terminates_a_running_agent() -> None:
    """SIGTERM first; a process that already exited is left alone."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    quickstart.stop_agent(proc, timeout=10)
    assert proc.returncode is not None
    quickstart.stop_agent(proc)
