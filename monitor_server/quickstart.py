"""``make run``: the hub on ./data/monitor.db with its URL and token printed, ready to try.

The default path shows the identity model (DESIGN §10): an ``admin`` account is created on the
first start (its random password is printed once), and the local agent enrolls with a one-use
enrollment token passed in its environment (never argv: ``ps`` shows argv to every user), then
presents its own device credential, kept in ``data/agent/credential``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from monitor_server.app import create_app
from monitor_server.cli import announce, claim_database, load_settings
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import serve
from monitor_server.ui.dashboard import Dashboard
from protocol.errors import Conflict
from protocol.identity import Role

log = logging.getLogger(__name__)

ADMIN = "admin"
AGENT_STATE = Path("data/agent")
ENROLLMENT_TTL = 3600.0  # the local agent's enrollment token, if it is not used at once


@dataclass(frozen=True)
class FirstStart:
    """What ``prepare`` found or made: an admin to log in as, its password (first start only), and
    the local agent's enrollment token (None when it keeps a credential this hub knows)."""

    admin: str | None
    admin_password: str | None
    enrollment_token: str | None


async def prepare(hub: Hub, agent_state: Path) -> FirstStart:
    """Before serving: an admin account if there is no user, and an enrollment token for the local
    agent unless it keeps a credential this hub knows (a stale one, say from a deleted database,
    is removed so the agent enrolls again)."""
    await hub.store.open()
    try:
        password = None
        users = await hub.identity.accounts.list_users()
        if not users:
            password = secrets.token_urlsafe(16)
            try:
                await hub.identity.accounts.create_user("make-run", ADMIN, password, Role.ADMIN)
            except Conflict:
                password = None
            users = await hub.identity.accounts.list_users()
        admin = next((u.name for u in users if u.role is Role.ADMIN), None)
        token = None
        if not await _agent_credential_known(hub, agent_state):
            for name in ("credential", "credential.previous"):
                (agent_state / name).unlink(missing_ok=True)
            _, token = await hub.identity.enrollment.create_token(
                "make-run", ENROLLMENT_TTL, max_uses=1, tags=("make-run",)
            )
        return FirstStart(admin, password, token)
    finally:
        await hub.store.close()


async def _agent_credential_known(hub: Hub, agent_state: Path) -> bool:
    try:
        device_id = (agent_state / "device_id").read_text().strip()
    except OSError:
        return False
    if not device_id or not (agent_state / "credential").exists():
        return False
    found = await hub.identity.enrollment.credential(device_id)
    return found is not None and not found.revoked


def account_lines(first: FirstStart) -> str:
    if first.admin_password is None:
        return "  Account:    log in with your account (created on the first `make run`)\n"
    return (
        f"  Account:    {first.admin} / {first.admin_password}\n"
        f"              (shown only now; change it: monitor-server users set-password {first.admin})\n"
    )


def banner(hub: Hub, dashboard: Dashboard, admin: str | None = None) -> str:
    """The URLs, a one-time login link (as ``admin`` when there is one), and the legacy token."""
    s = hub.settings
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host  # noqa: S104 - mapping, not binding
    base = f"{'https' if s.tls_cert else 'http'}://{host}:{s.port}"
    minutes = round(s.login_code_ttl / 60)
    return (
        "\n"
        f"  Hub:        {base}   (health: {base}/health)\n"
        f"  Dashboard:  {base}/ui\n"
        f"  Log in:     {dashboard.login_link(base, admin or '')}\n"
        f"              (one-time link{f' as {admin}' if admin else ''}, valid {minutes} min)\n"
        f"  Token:      {hub.token.value}\n"
        f"              (the legacy fleet token, kept in {s.token_dir / 'token'}; send it as X-Auth-Token)\n"
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
    server: str,
    token: str | None,
    state_dir: Path,
    ca_file: Path | None = None,
    enrollment_token: str | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start the local agent against ``server``; None (and a warning) if it cannot start.

    ``token``: the legacy fleet token (None: the agent presents its device credential);
    ``enrollment_token``: exchanged for that credential at its first start. Both go in its
    environment, never on the command line: ps shows argv.
    """
    env = dict(os.environ)
    if token is not None:
        env["MONITOR_AGENT_TOKEN"] = token
    if enrollment_token is not None:
        env["MONITOR_AGENT_ENROLLMENT_TOKEN"] = enrollment_token
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
    first = asyncio.run(prepare(hub, AGENT_STATE))
    print(banner(hub, app.state.dashboard, first.admin) + account_lines(first), flush=True)
    # One local agent next to the hub, so the dashboard shows a device at once. It retries
    # with backoff until uvicorn listens, and gets SIGTERM (close 1000) when the hub stops.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    scheme = "https" if settings.tls_cert else "http"
    agent = start_agent(
        f"{scheme}://{host}:{settings.port}",
        None,  # the agent presents its own device credential, not the fleet token
        AGENT_STATE,
        ca_file=settings.tls_cert,
        enrollment_token=first.enrollment_token,
    )
    try:
        serve(app, settings)
    finally:
        stop_agent(agent)
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    main()
