"""``monitor-server users ...`` and ``monitor-server enroll-token ...``: first start and scripts.

These open the database directly, whether the hub is running or not: SQLite in WAL mode lets
another process write while the hub runs (each write waits up to 5 s for the hub's), so they do
not take the hub's lock (``dblock.py``). The hub sees a new user or token at once (it looks
unknown credentials up in the store); a password changed here ends that user's sessions, which
a running hub may still accept for up to ``MONITOR_AUTH_CACHE_TTL`` seconds (5) from its cache.

A password is read from the terminal (twice, not echoed) or, when stdin is not a terminal, from
its first line, so a script can pipe it in; it is never taken from the command line (argv is
visible to every user of the machine). Secrets are printed once, alone on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pydantic import ValidationError

from monitor_server.identity import Identity
from monitor_server.settings import Settings
from monitor_server.store import open_store, shown
from protocol.errors import MonitorError
from protocol.identity import (
    MAX_LIFETIME,
    MAX_PASSWORD,
    MIN_PASSWORD,
    EnrollmentTokenCreate,
    Role,
    UserCreate,
)
from protocol.rest import describe

T = TypeVar("T")


_DB = argparse.ArgumentParser(add_help=False)
_DB.add_argument("--db", help="database (MONITOR_DB, default ./data/monitor.db)")


def users_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="monitor-server users", description="Dashboard and API users.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", parents=[_DB], help="create a user (password from the terminal or stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    passwd = sub.add_parser("set-password", parents=[_DB], help="replace a user's password (ends sessions)")
    passwd.add_argument("name")
    sub.add_parser("list", parents=[_DB], help="every user and their role")
    args = parser.parse_args(argv)
    settings = _settings(args.db)
    if args.action == "list":
        users = _run(settings, lambda identity: identity.accounts.list_users())
        for user in users:
            print(f"{user.name}\t{user.role.value}")
        return
    password = read_password()
    if args.action == "add":
        try:
            UserCreate(name=args.name, password=password, role=Role(args.role))
        except ValidationError as exc:
            sys.exit(f"monitor-server users: {describe(exc)}")
        _run(
            settings,
            lambda identity: identity.accounts.create_user(_operator(), args.name, password, Role(args.role)),
        )
        print(f"created user {args.name!r} with role {args.role}", file=sys.stderr)
    else:
        _run(
            settings,
            lambda identity: identity.accounts.update_user(_operator(), args.name, password=password),
        )
        print(f"changed the password of {args.name!r}; their sessions are ended", file=sys.stderr)


def enroll_token_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="monitor-server enroll-token", description="Agent enrollment tokens."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", parents=[_DB], help="make a token; printed once, alone on stdout")
    create.add_argument("--expires-in", type=float, default=3600.0, help="seconds it stays valid (3600)")
    create.add_argument("--max-uses", type=int, default=1, help="devices it may enroll (1)")
    create.add_argument("--tags", default="", help="comma-separated tags given to the devices it enrolls")
    args = parser.parse_args(argv)
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    try:
        EnrollmentTokenCreate(expires_in=args.expires_in, max_uses=args.max_uses, tags=tags)
    except ValidationError as exc:
        sys.exit(f"monitor-server enroll-token: {describe(exc)} (expires-in at most {MAX_LIFETIME:.0f} s)")
    token, secret = _run(
        _settings(args.db),
        lambda identity: identity.enrollment.create_token(_operator(), args.expires_in, args.max_uses, tags),
    )
    print(secret, flush=True)
    print(
        f"enrollment token {token.id}: {args.max_uses} use(s), valid {args.expires_in:g} s; shown only once"
        "\n  a device exchanges it for its own credential at POST /enroll (docs/security.md)",
        file=sys.stderr,
    )


def read_password() -> str:
    """From the terminal (asked twice), or the first line of stdin when it is not a terminal."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            sys.exit("monitor-server users: the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        sys.exit(f"monitor-server users: a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _operator() -> str:
    """Who the audit log names for a CLI change: the OS user running it."""
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


def _settings(db: str | None) -> Settings:
    try:
        return Settings(db=db) if db else Settings()
    except ValidationError as exc:
        sys.exit(f"monitor-server: invalid setting: {exc}")


def _run(settings: Settings, work: Callable[[Identity], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(settings.db)
        await store.open()
        try:
            return await work(Identity.build(store, settings, None))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except MonitorError as exc:  # a taken name, an unknown user
        sys.exit(f"monitor-server: {exc}")
    except (OSError, sqlite3.Error) as exc:
        sys.exit(f"monitor-server: cannot open the database {shown(settings.db)}: {exc}")
