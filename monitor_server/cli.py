"""``monitor-server``: flags override ``MONITOR_*`` environment variables, which override defaults."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from monitor_server import __version__
from monitor_server.app import create_app
from monitor_server.dblock import DatabaseInUse, DatabaseLock, lock_database
from monitor_server.hub import Hub
from monitor_server.logs import configure
from monitor_server.server import serve
from monitor_server.settings import Settings
from monitor_server.store import shown
from monitor_server.token import UnusableToken, configured_token

log = logging.getLogger("monitor_server")

_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("host", str, "address to listen on (MONITOR_HOST, default 127.0.0.1)"),
    ("port", int, "port to listen on (MONITOR_PORT, default 8000)"),
    ("db", str, "SQLite database file (MONITOR_DB, default ./data/monitor.db)"),
    ("data-dir", str, "folder for the generated token (MONITOR_DATA_DIR, default: the db's folder)"),
    ("ping-interval", float, "seconds between keepalive pings (MONITOR_PING_INTERVAL, 5)"),
    ("ping-timeout", float, "seconds to wait for a pong (MONITOR_PING_TIMEOUT, 5)"),
    (
        "heartbeat-interval",
        float,
        "agents send a frame at least this often (MONITOR_HEARTBEAT_INTERVAL, 300)",
    ),
    ("http-offline-after", float, "HTTP-only devices go offline after (MONITOR_HTTP_OFFLINE_AFTER, 30)"),
    ("retention-days", float, "days of raw samples kept (MONITOR_RETENTION_DAYS, 7)"),
    ("log-level", str, "debug|info|warning|error (MONITOR_LOG_LEVEL, info)"),
    ("log-format", str, "text|json (MONITOR_LOG_FORMAT, text)"),
    ("tls-cert", str, "PEM certificate: serve HTTPS/WSS (MONITOR_TLS_CERT)"),
    ("tls-key", str, "PEM private key for --tls-cert (MONITOR_TLS_KEY)"),
)


_DESCRIPTION = "Run the hub. Flags override MONITOR_* environment variables, which override defaults."
_SUBCOMMANDS = """subcommands (each with its own --help):
  monitor-server backup DEST       online copy of the SQLite database while the hub runs
  monitor-server users ...         dashboard and API users: add, set-password, list
  monitor-server enroll-token ...  agent enrollment tokens
  monitor-server releases ...      agent release keys, bundle signatures, publishing (keygen, sign, publish)
"""


def parse_args(argv: Sequence[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="monitor-server",
        description=_DESCRIPTION,
        epilog=_SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"monitor-server {__version__}")
    for flag, kind, text in _FLAGS:
        parser.add_argument(f"--{flag}", type=kind, help=text)
    given = vars(parser.parse_args(argv))
    return {key: value for key, value in given.items() if value is not None}


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
        configured_token(settings)
    except ValidationError as exc:
        sys.exit(f"monitor-server: invalid setting: {exc}")
    except UnusableToken as exc:
        sys.exit(f"monitor-server: {exc}")
    return settings


def claim_database(settings: Settings) -> DatabaseLock | None:
    """Lock the database before anything reads or writes it, or exit naming the hub that has it.

    Kept for the life of the process (the OS drops it at exit, even on SIGKILL).
    """
    try:
        return lock_database(settings.db)
    except DatabaseInUse as exc:
        sys.exit(f"monitor-server: {exc}")
    except OSError as exc:
        sys.exit(f"monitor-server: cannot lock the database: {exc}")


def announce(hub: Hub) -> None:
    s, token = hub.settings, hub.token
    scheme = "https" if s.tls_cert else "http"
    log.info(
        "monitor-server %s listening on %s://%s:%d (database %s)",
        __version__,
        scheme,
        s.host,
        s.port,
        shown(s.db),
    )
    if token.source == "generated" and s.legacy_token_on:
        path = s.token_dir / "token"
        # Printed once, on the start that creates it; later starts reuse the file silently.
        print(f"Generated an API token (kept in {path}):\n\n    {token.value}\n", flush=True)
    if token.insecure and s.legacy_token_on:
        log.warning(
            "the configured token is well known or short: anyone can use this hub. "
            "Set MONITOR_TOKEN to a long random value."
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["backup"]:  # subcommands; everything else is the server's flags
        from monitor_server.backup import main as backup_main

        backup_main(args[1:])
        return
    if args[:1] == ["releases"]:  # keygen and sign: files only; publish: the database (releases_cli.py)
        from monitor_server.releases_cli import main as releases_main

        releases_main(args[1:])
        return
    if args[:1] in (["users"], ["enroll-token"]):  # work with the hub running or stopped (admin_cli.py)
        from monitor_server.admin_cli import enroll_token_main, users_main

        (users_main if args[0] == "users" else enroll_token_main)(args[1:])
        return
    settings = load_settings(args)
    lock = claim_database(settings)  # before the store, the token file, presence and the banner
    configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    announce(app.state.hub)
    try:
        serve(app, settings)
    finally:
        if lock is not None:
            lock.release()
