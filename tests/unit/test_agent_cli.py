"""The command line: `run` is the default, flags map onto config keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor_agent.cli import _with_default_command, build_parser, config_from_args, main


def parse(*argv: str):  # type: ignore[no-untyped-def]
    parser = build_parser()
    return parser.parse_args(_with_default_command(list(argv), parser))


def test_plain_flags_run_the_daemon() -> None:
    """`monitor-agent --interval 2` means `monitor-agent run --interval 2`."""
    args = parse("--interval", "2", "--token", "t")
    assert args.command == "run" and args.interval == 2.0


def test_flags_become_config(tmp_path: Path) -> None:
    """Every flag lands in the config; --allow may repeat and hold commas."""
    args = parse(
        "run",
        "--server",
        "ws://h:1",
        "--state-dir",
        str(tmp_path),
        "--transport",
        "http",
        "--allow",
        "reboot",
        "--log-level",
        "debug",
    )
    config = config_from_args(args)
    assert config.server == "ws://h:1" and config.state_dir == tmp_path
    assert config.transport == "http" and config.allow == ["reboot"]
    assert config.log_level == "DEBUG"


def test_bad_config_exits_2_with_message(capsys: pytest.CaptureFixture[str]) -> None:
    """A configuration error is one line on stderr and exit status 2."""
    with pytest.raises(SystemExit) as exited:
        main(["--allow", "shell"])
    assert exited.value.code == 2
    assert "shell" in capsys.readouterr().err


def test_the_agent_never_imports_pydantic(tmp_path: Path) -> None:
    """The CLI, config, daemon and transports load without pydantic (about 15 MB of RSS)."""
    code = (
        "import sys\n"
        "from monitor_agent.cli import build_parser, config_from_args\n"
        "from monitor_agent.daemon import build_agent, build_transport\n"
        f"args = build_parser().parse_args(['run', '--state-dir', {str(tmp_path)!r}])\n"
        "config = config_from_args(args)\n"
        "build_transport(config); build_agent(config).spool.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'pydantic', 'pydantic_core'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_server_flag_takes_several_urls(tmp_path: Path) -> None:
    """`--server URL1,URL2` gives the agent both hubs, in order, for failover."""
    args = parse("--server", "http://a:1,ws://b:2", "--state-dir", str(tmp_path))
    config = config_from_args(args)
    assert config.ws_urls() == ["ws://a:1/ws/agent", "ws://b:2/ws/agent"]


def test_a_bad_url_among_several_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    """One bad URL in the list stops the agent at start, saying which one."""
    with pytest.raises(SystemExit) as exited:
        main(["--server", "http://a:1,b:2"])
    assert exited.value.code == 2
    assert "'b:2' (URL 2 of 2)" in capsys.readouterr().err


def test_help_explains_failover(capsys: pytest.CaptureFixture[str]) -> None:
    """`monitor-agent run --help` documents the comma-separated list and the round robin."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--server URL[,URL...]" in text and "round robin" in text
