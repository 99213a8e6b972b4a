"""``monitor-server --help``: plain text that names every subcommand."""

from __future__ import annotations

import pytest

from monitor_server.cli import main


def test_help_has_no_rst_markup_and_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints no double backticks and names backup, users and enroll-token."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    text = capsys.readouterr().out
    assert exited.value.code == 0 and "``" not in text
    for subcommand in ("backup", "users", "enroll-token"):
        assert f"monitor-server {subcommand} " in text
