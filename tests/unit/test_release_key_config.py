"""The release public key comes from the flag, the config file (``release_key``) or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor_agent.cli import main
from monitor_agent.config import AgentConfig
from protocol.release import generate_key


def _stage(tmp_path: Path, *extra: str) -> int:
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(b"not a release")
    argv = ["update", "stage", str(bundle), "--sha256", "0" * 64, "--signature", "AAAA"]
    return main([*argv, "--state-dir", str(tmp_path / "state"), *extra])


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    _, public = generate_key()
    path = tmp_path / "release.pub"
    path.write_bytes(public)
    return path


def test_release_key_is_a_path_setting(tmp_path: Path) -> None:
    assert AgentConfig(release_key=str(tmp_path / "k.pub")).release_key == tmp_path / "k.pub"  # type: ignore[arg-type]


def test_without_a_key_every_update_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _stage(tmp_path) == 1
    assert "no release key is configured" in capsys.readouterr().err


def test_the_config_files_key_is_used(
    tmp_path: Path, public_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'release_key = "{public_key}"\n')
    assert _stage(tmp_path, "--config", str(config)) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "no release key" not in err  # checked against the key: the hash fails


def test_the_environments_key_is_used(
    tmp_path: Path, public_key: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_AGENT_RELEASE_KEY", str(public_key))
    assert _stage(tmp_path) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "no release key" not in err
