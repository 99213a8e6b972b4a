"""``monitor-agent``: ``run`` (the default when only flags are given) and room for more commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor_agent import __version__
from monitor_agent.config import AgentConfig, load_config
from monitor_agent.errors import ConfigError
from monitor_agent.update.commands import add_update_commands  # bundle, launch, update

DEFAULT_COMMAND = "run"

# Flags that map 1:1 onto AgentConfig keys (dest == key); None means "not given".
AGENT_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "--server",
        {
            "metavar": "URL[,URL...]",
            "help": "hub base URL: http(s)://host:port or ws(s)://... (/ws/agent is added); "
            "several, comma-separated, for failover: the first is tried first, and after a failed "
            "attempt or a lost connection the next one (round robin, with backoff)",
        },
    ),
    ("--token", {"help": "shared secret sent as X-Auth-Token"}),
    ("--device-id", {"help": "device id (default: derived from the machine, kept in the state dir)"}),
    ("--interval", {"type": float, "help": "seconds between samples (default 5)"}),
    ("--state-dir", {"type": Path, "help": "folder for the spool, command journal and device id"}),
    ("--transport", {"choices": ["ws", "http"], "help": "ws (default) or http (REST polling)"}),
    ("--log-level", {"help": "DEBUG, INFO (default), WARNING or ERROR"}),
    ("--log-format", {"choices": ["text", "json"], "help": "log line format (default text)"}),
    ("--backoff-base", {"type": float, "help": "first reconnect delay ceiling in seconds (1)"}),
    ("--backoff-cap", {"type": float, "help": "largest reconnect delay in seconds (60)"}),
    ("--auth-retry-delay", {"type": float, "help": "delay after a refused token (60)"}),
    ("--spool-max-samples", {"type": int, "help": "samples kept while offline (50000)"}),
    ("--restart-mode", {"choices": ["exec", "spawn"], "help": "how `restart` replaces the process"}),
    ("--ca-file", {"type": Path, "help": "PEM CA bundle to verify an https/wss hub (default: system store)"}),
    ("--pin-sha256", {"help": "accept only these hub certificate SHA-256 fingerprints (comma-separated)"}),
    ("--tags", {"help": "tags this device reports to the hub (comma-separated, e.g. env=prod,rack-4)"}),
    (
        "--enrollment-token",
        {
            "help": "enroll with this token when no credential is kept "
            "(prefer MONITOR_AGENT_ENROLLMENT_TOKEN: argv is public)"
        },
    ),
    ("--enrollment-token-file", {"type": Path, "help": "read the enrollment token from this file"}),
)


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every agent-running command shares (``run`` now, ``simulate`` later)."""
    parser.add_argument("--config", type=Path, help="TOML config file (flags > env > file)")
    for flag, options in AGENT_FLAGS:
        parser.add_argument(flag, default=None, **options)
    parser.add_argument(
        "--allow",
        action="append",
        metavar="NAME",
        help="enable a host command by name (repeatable, or comma-separated)",
    )


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    keys = [flag.lstrip("-").replace("-", "_") for flag, _ in AGENT_FLAGS]
    flags: dict[str, Any] = {key: getattr(args, key) for key in keys}
    flags["allow"] = [n.strip() for raw in args.allow or [] for n in raw.split(",") if n.strip()]
    return load_config(flags, config_path=args.config)


def _run(args: argparse.Namespace) -> int:
    from monitor_agent.daemon import run  # psutil and websockets load only when needed

    return run(config_from_args(args))


def _enroll(args: argparse.Namespace) -> int:
    from monitor_agent.enroll import enroll_command  # urllib and the identity only when needed

    return enroll_command(config_from_args(args))


def _add_enroll(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "enroll",
        help="exchange an enrollment token for this device's credential",
        description="POST /enroll with this device's id and hostname; the credential is kept in "
        "<state-dir>/credential (mode 0600) and presented from then on. Give the token by "
        "MONITOR_AGENT_ENROLLMENT_TOKEN or --enrollment-token-file rather than on the command line.",
    )
    add_agent_flags(parser)
    parser.set_defaults(handler=_enroll)


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("run", help="run the agent daemon (default)")
    add_agent_flags(parser)
    parser.set_defaults(handler=_run)


def _simulate(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from monitor_agent.daemon import configure_logging
    from monitor_agent.simulator import FleetConfig, quiet_agents, simulate

    flags = {
        "server": args.server,
        "token": args.token,
        "interval": args.interval,
        "backoff_base": args.backoff_base,
        "backoff_cap": args.backoff_cap,
        "log_level": args.log_level,
    }
    config = load_config(flags)  # same URL, token and env rules as a real agent
    configure_logging(config.log_level, "text")
    quiet_agents(getattr(logging, args.agent_log_level.upper()))
    fleet = FleetConfig(
        url=config.ws_url(),
        token=config.token,
        count=args.count,
        interval=config.interval,
        prefix=args.prefix,
        ramp=args.ramp,
        backoff_base=config.backoff_base,
        backoff_cap=config.backoff_cap,
        jitter=not args.no_jitter,
        seed=args.seed,
    )
    asyncio.run(simulate(fleet, report_every=args.report_every))
    return 0


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    return parse


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "simulate",
        help="run N virtual agents in this process (load tests, demos)",
        description="N virtual agents over real WebSockets, each with its own device id, "
        "simulated metrics, the agent's reconnect/backoff and built-in commands.",
    )
    parser.add_argument("--count", type=int, required=True, help="number of virtual agents")
    parser.add_argument("--interval", type=float, help="seconds between samples per agent (5)")
    parser.add_argument("--server", help="hub base URL (as for `run`; of several, the first)")
    parser.add_argument("--token", help="shared secret sent as X-Auth-Token")
    parser.add_argument("--prefix", default="sim-", help="device ids are PREFIX00000, PREFIX00001...")
    parser.add_argument(
        "--ramp",
        type=_positive(float),
        default=0.0,
        help="spread connection starts over this many seconds (0)",
    )
    parser.add_argument(
        "--report-every", type=_positive(float), default=5.0, help="seconds between 'N/M connected' lines (5)"
    )
    parser.add_argument("--backoff-base", type=float, help="first reconnect delay ceiling (1)")
    parser.add_argument("--backoff-cap", type=float, help="largest reconnect delay (60)")
    parser.add_argument(
        "--no-jitter",
        action="store_true",
        help="reconnect after exactly the backoff ceiling (to study storms)",
    )
    parser.add_argument("--seed", type=int, help="random seed for reproducible metrics")
    parser.add_argument("--log-level", help="the simulator's own log level (INFO)")
    parser.add_argument(
        "--agent-log-level",
        default="ERROR",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the per-agent loggers (ERROR)",
    )
    parser.set_defaults(handler=_simulate)


# Each entry adds one subcommand.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_run,
    _add_enroll,
    _add_simulate,
    add_update_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor-agent",
        description="Fleet monitoring agent. With only flags, runs the daemon (`run`).",
    )
    parser.add_argument("--version", action="version", version=f"monitor-agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def _with_default_command(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    names = {
        name
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    if argv and (argv[0] in names or argv[0] in {"-h", "--help", "--version"}):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv), parser))
    try:
        status: int = args.handler(args)
    except ConfigError as exc:
        parser.exit(2, f"monitor-agent: error: {exc}\n")
    return status
