"""``make run``: the hub on ./data/monitor.db with its URL and token printed, ready to try."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from monitor_server.app import create_app
from monitor_server.cli import announce, claim_database, load_settings
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import serve
from monitor_server.ui.dashboard import Dashboard

log = logging.getLogger(__name__)


def banner(hub: Hub, dashboard: Dashboard) -> str:
    s = hub.settings
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host  # noqa: S104 - mapping, not binding
    base = f"{'https' if s.tls_cert else 'http'}://{host}:{s.port}"
    minutes = round(s.login_code_ttl / 60)
    return (
        "\n"
        f"  Hub:        {base}   (health: {base}/health)\n"
        f"  Dashboard:  {base}/ui\n"
        f"  Log in:     {dashboard.login_link(base)}\n"
        f"              (one-time link, valid {minutes} min; or log in with the token)\n"
        f"  Token:      {hub.token.value}\n"
        f"              (kept in {s.token_dir / 'token'}; send it as X-Auth-Token)\n"
        f"  Try:        curl -H 'X-Auth-Token: {hub.token.value}' {base}/devices\n"
    )


def agent_command() -> list[str]:
    """The ``monitor-agent`` console script installed beside this interpreter.

    The hub never imports ``monitor_agent`` (an import contract in pyproject.toml): the agent is
    another program, started the way an operator would start it. ``python -m monitor_agent`` is
    the fallback only when the script is missing (a source tree run without ``pip install``).
    """
    script = shutil.which("monitor-agent", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "monitor_agent"]


def start_agent(
    server: str, token: str, state_dir: Path, ca_file: Path | None = None
) -> subprocess.Popen[bytes] | None:
    """Start the local agent against ``server``; None (and a warning) if it cannot start."""
    env = {**os.environ, "MONITOR_AGENT_TOKEN": token}  # not on the command line: ps shows argv
    if ca_file is not None:
        env["MONITOR_AGENT_CA_FILE"] = str(ca_file)
    argv = [*agent_command(), "run", "--server", server, "--state-dir", str(state_dir)]
    try:
        proc = subprocess.Popen(argv, env=env)  # noqa: S603 - our own console script
    except OSError as exc:
        log.warning("could not start the local agent: %s", exc)
        return None
    log.info("local agent started (pid %d, state in %s)", proc.pid, state_dir)
    return proc


def stop_agent(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM (the agent flushes and closes with 1000), SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    settings = load_settings([])
    lock = claim_database(settings)  # a second `make run` in this folder stops here, changing nothing
    configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    hub: Hub = app.state.hub
    announce(hub)
    print(banner(hub, app.state.dashboard), flush=True)
    # One local agent next to the hub, so the dashboard shows a device at once. It retries
    # with backoff until uvicorn listens, and gets SIGTERM (close 1000) when the hub stops.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    scheme = "https" if settings.tls_cert else "http"
    agent = start_agent(
        f"{scheme}://{host}:{settings.port}", hub.token.value, Path("data/agent"), ca_file=settings.tls_cert
    )
    try:
        serve(app, settings)
    finally:
        stop_agent(agent)
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    main()
