"""``monitor-agent bundle``, ``launch`` and ``update``: their parsers (the work loads on use)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_update_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the three subcommands to ``monitor-agent``'s parser."""
    from monitor_agent.cli import add_agent_flags  # cli imports this module: not at the top

    bundle = commands.add_parser(
        "bundle",
        help="build a release of this agent for this platform (for `monitor-server releases`)",
        description="Build the agent's wheel and its dependencies' wheels into one file with a "
        "manifest (version, Python, platform, SHA-256 of each wheel), installable with no index.",
    )
    bundle.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    bundle.add_argument("--source", help="source tree, wheel or requirement to build (default: this agent)")
    bundle.set_defaults(handler=_bundle)

    launch = commands.add_parser(
        "launch",
        help="run the agent under the update launcher (systemd's ExecStart)",
        description="Run releases/current of this state folder (or this install) as `run` with the "
        "given flags, apply staged updates and roll back one that does not reach welcome.",
    )
    _add_update_flags(launch)
    launch.add_argument(
        "--update-deadline",
        type=float,
        default=60.0,
        help="seconds a new version has to reach welcome before it is rolled back (60)",
    )
    add_agent_flags(launch)
    launch.set_defaults(handler=_launch)

    update = commands.add_parser("update", help="stage an update for the launcher, or show update state")
    actions = update.add_subparsers(dest="action", required=True)
    stage = actions.add_parser("stage", help="verify a bundle and hand it to the launcher")
    stage.add_argument("bundle", type=Path)
    stage.add_argument("--sha256", required=True, help="the bundle's SHA-256 as published")
    stage.add_argument("--signature", required=True, help="the bundle's Ed25519 signature (base64)")
    stage.add_argument("--allow-downgrade", action="store_true", help="accept a lower version")
    _add_update_flags(stage)
    add_agent_flags(stage)
    status = actions.add_parser("status", help="print the update journal, pointers and last result")
    add_agent_flags(status)
    update.set_defaults(handler=_update)


def _add_update_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release-key",
        type=Path,
        help="the release public key (PEM) bundles must be signed with (config: release_key, "
        "MONITOR_AGENT_RELEASE_KEY)",
    )


def run_args(args: argparse.Namespace) -> list[str]:
    """The agent flags given to ``launch``, spelled for ``monitor-agent run`` (not the launcher's)."""
    from monitor_agent.cli import AGENT_FLAGS

    argv = ["--config", str(args.config)] if args.config is not None else []
    for flag, _ in AGENT_FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            argv += [flag, str(value)]
    for allowed in args.allow or []:
        argv += ["--allow", allowed]
    return argv


def _key(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _bundle(args: argparse.Namespace) -> int:
    from monitor_agent.update.bundle import build_bundle

    manifest = build_bundle(args.out, args.source)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: version {manifest.version}, {len(manifest.wheels)} wheels, {size} bytes")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from monitor_agent import __version__
    from monitor_agent.cli import config_from_args
    from monitor_agent.update.launcher import LaunchSettings, launch

    config = config_from_args(args)  # refuse a bad configuration before the first child
    settings = LaunchSettings(
        state_dir=config.state_dir,
        agent_args=tuple(run_args(args)),
        own_version=__version__,
        release_key=_key(args.release_key or config.release_key),
        deadline=args.update_deadline,
    )
    return launch(settings)


def _update(args: argparse.Namespace) -> int:
    from monitor_agent import __version__
    from monitor_agent.cli import config_from_args
    from monitor_agent.update.install import stage
    from monitor_agent.update.state import CURRENT, PREVIOUS, Layout
    from protocol.release import ReleaseRefused

    config = config_from_args(args)
    layout = Layout(config.state_dir)
    if args.action == "status":
        report: dict[str, Any] = {
            "current": layout.pointer(CURRENT) or __version__,
            "previous": layout.pointer(PREVIOUS),
            "pending": layout.read_pending() and json.loads(layout.journal.read_text()),
            "staged": layout.read_staged() and json.loads(layout.staged.read_text()),
            "result": layout.read_result(),
        }
        print(json.dumps(report, indent=2))
        return 0
    try:
        staged = stage(
            layout,
            args.bundle,
            args.sha256,
            args.signature,
            _key(args.release_key or config.release_key),
            __version__,
            allow_downgrade=args.allow_downgrade,
        )
    except ReleaseRefused as exc:
        print(f"monitor-agent update: refused: {exc}", file=sys.stderr)
        return 1
    print(f"staged {staged.version}: the launcher installs it next", file=sys.stderr)
    return 0
