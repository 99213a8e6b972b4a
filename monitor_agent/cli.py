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

DEFAULT_COMMAND = "run"

# Flags that map 1:1 onto AgentConfig keys (dest == key); None means "not given".
AGENT_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--server", {"help": "hub base URL: http(s)://host:port or ws(s)://... (/ws/agent is added)"}),
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
)


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every agent-running command shares (``run`` now, ``simulate`` later)."""
    parser.add_argument("--config", type=Path, help="TOML config file (flags > env > file)")
    for flag, options in AGENT_FLAGS:
        parser.add_argument(flag, default=None, **options)
    parser.add_argument("--allow", action="append", metavar="NAME",
                        help="enable a host command by name (repeatable, or comma-separated)")


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    keys = [flag.lstrip("-").replace("-", "_") for flag, _ in AGENT_FLAGS]
    flags: dict[str, Any] = {key: getattr(args, key) for key in keys}
    flags["allow"] = [n.strip() for raw in args.allow or [] for n in raw.split(",") if n.strip()]
    return load_config(flags, config_path=args.config)


def _run(args: argparse.Namespace) -> int:
    from monitor_agent.daemon import run  # psutil and websockets load only when needed

    return run(config_from_args(args))


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("run", help="run the agent daemon (default)")
    add_agent_flags(parser)
    parser.set_defaults(handler=_run)


# Each entry adds one subcommand; a new command (e.g. `simulate`) appends its own adder.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_run
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
    args = parser.parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv),
                                                   parser))
    try:
        status: int = args.handler(args)
    except ConfigError as exc:
        parser.exit(2, f"monitor-agent: error: {exc}\n")
    return status
