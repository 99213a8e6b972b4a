"""What the launcher finds after ``kill -9`` at each step, repaired without installing anything.

Installed versions are stand-ins here (a folder with the ``.installed`` mark); the real installs,
processes and kills are in tests/integration/test_agent_update.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor_agent.update.install import MAX_ATTEMPTS, Updater
from monitor_agent.update.state import INSTALLED_MARK, Layout, Pending, Staged, Step


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "state")
    layout.update.mkdir(parents=True)
    return layout


def _installed(layout: Layout, version: str) -> None:
    folder = layout.version_dir(version)
    folder.mkdir(parents=True)
    (folder / INSTALLED_MARK).write_text(version)


def _updater(layout: Layout) -> Updater:
    return Updater(layout, "0.1.0", public_key=None)


def _journal(step: Step, **fields: object) -> Pending:
    return Pending("0.3.0", step, old_current="0.2.0", old_previous="0.1.5", **fields)  # type: ignore[arg-type]


def _as_before_the_update(layout: Layout) -> None:
    _installed(layout, "0.2.0")
    _installed(layout, "0.1.5")
    layout.set_pointer("current", "0.2.0")
    layout.set_pointer("previous", "0.1.5")


def test_a_partial_install_is_deleted_and_the_staged_update_kept(layout: Layout) -> None:
    """Killed while installing: the half-made folder goes, the journal stays for the retry."""
    _as_before_the_update(layout)
    layout.version_dir("0.3.0").mkdir(parents=True)  # no .installed: partial
    layout.write_staged(Staged("0.3.0", "0.3.0.zip", "ab" * 32, "sig"))
    layout.write_pending(_journal(Step.INSTALLING))
    assert _updater(layout).recover() is None
    assert not layout.version_dir("0.3.0").exists()
    assert layout.read_pending() is not None and layout.read_staged() is not None
    assert layout.pointer("current") == "0.2.0"


def test_an_install_with_nothing_staged_is_forgotten(layout: Layout) -> None:
    """Killed while installing an update that is no longer staged: journal and install are dropped."""
    _as_before_the_update(layout)
    _installed(layout, "0.3.0")
    layout.write_pending(_journal(Step.INSTALLING))
    assert _updater(layout).recover() is None
    assert layout.read_pending() is None and not layout.version_dir("0.3.0").exists()


def test_a_half_done_switch_is_completed_and_put_on_probation(layout: Layout) -> None:
    """Killed between the two pointer moves: both are done, the journal is at probation."""
    _as_before_the_update(layout)
    _installed(layout, "0.3.0")
    layout.set_pointer("previous", "0.2.0")  # the first move happened, the second not
    layout.write_pending(_journal(Step.SWITCHING))
    pending = _updater(layout).recover()
    assert pending is not None and pending.step is Step.PROBATION
    assert (layout.pointer("current"), layout.pointer("previous")) == ("0.3.0", "0.2.0")


def test_probation_resumes_then_gives_up_after_repeated_kills(layout: Layout) -> None:
    """Killed on probation: the new version gets another start, at most MAX_ATTEMPTS, then rolls back."""
    _as_before_the_update(layout)
    _installed(layout, "0.3.0")
    layout.set_pointer("current", "0.3.0")
    layout.set_pointer("previous", "0.2.0")
    layout.write_pending(_journal(Step.PROBATION, probations=MAX_ATTEMPTS - 1))
    pending = _updater(layout).recover()
    assert pending is not None
    _updater(layout).start_probation(pending)  # the launcher starts it ... and is killed again
    assert _updater(layout).recover() is None
    assert (layout.pointer("current"), layout.pointer("previous")) == ("0.2.0", "0.1.5")
    result = layout.read_result()
    assert result is not None and result["status"] == "update_failed" and result["code"] == "interrupted"
    assert "stopped 3 times during probation" in result["reason"]


def test_a_missing_install_on_probation_is_rolled_back(layout: Layout) -> None:
    """current names a version whose folder is gone: back to the previous one, said why."""
    _as_before_the_update(layout)
    layout.set_pointer("current", "0.3.0")
    layout.set_pointer("previous", "0.2.0")
    layout.write_pending(_journal(Step.PROBATION))
    assert _updater(layout).recover() is None
    assert layout.pointer("current") == "0.2.0"
    result = layout.read_result()
    assert (
        result is not None
        and result["code"] == "install_missing"
        and "install is missing" in result["reason"]
    )


def test_an_interrupted_rollback_is_finished(layout: Layout) -> None:
    """Killed while rolling back: pointers restored, new version deleted, update_failed recorded."""
    _as_before_the_update(layout)
    _installed(layout, "0.3.0")
    layout.set_pointer("current", "0.3.0")
    layout.write_pending(_journal(Step.ROLLING_BACK, code="exited", reason="exited with status 1"))
    assert _updater(layout).recover() is None
    assert (layout.pointer("current"), layout.pointer("previous")) == ("0.2.0", "0.1.5")
    assert not layout.version_dir("0.3.0").exists() and layout.is_installed("0.1.5")
    result = layout.read_result()
    assert result is not None and result == {
        **result,
        "status": "update_failed",
        "code": "exited",
        "reason": "exited with status 1",
    }
    assert layout.read_pending() is None


def test_a_result_is_reported_as_update_failed_with_its_code(layout: Layout) -> None:
    """What the agent tells the hub about the launcher's result: ``update_failed: <code>: <reason>``."""
    from monitor_agent.update.receive import Updates, mark_reported, unreported_result

    updates = Updates(layout.state_dir, b"key", "0.2.0")
    layout.write_result(
        "update_failed", "0.3.0", code="no_welcome", reason="did not reach welcome within 60s"
    )
    assert unreported_result(updates) == (
        "0.3.0",
        "rolled_back",
        "update_failed: no_welcome: did not reach welcome within 60s",
    )
    mark_reported(updates)
    assert unreported_result(updates) is None
    layout.write_result(
        "update_failed", "0.3.0", code="install_failed", reason="install failed: pip exited 1"
    )
    assert unreported_result(updates) == (
        "0.3.0",
        "failed",
        "update_failed: install_failed: install failed: pip exited 1",
    )
    layout.write_result("refused", "0.3.0", code="hash_mismatch", reason="the bundle's SHA-256 is ...")
    assert unreported_result(updates) == (
        "0.3.0",
        "failed",
        "update_failed: hash_mismatch: the bundle's SHA-256 is ...",
    )
    layout.write_result("installed", "0.3.0", previous="0.2.0")
    assert unreported_result(updates) == ("0.3.0", "installed", "")


def test_the_old_versions_folder_is_moved_to_releases_once(layout: Layout) -> None:
    """A state folder from the launcher's first builds (``versions/``) is renamed to ``releases/``
    whole: the installs and the relative pointers come along; nothing happens a second time, nor
    when ``releases/`` is there already."""
    old = layout.state_dir / "versions"
    for version in ("0.2.0", "0.3.0"):
        (old / version).mkdir(parents=True)
        (old / version / INSTALLED_MARK).write_text(version)
    (old / "current").symlink_to("0.3.0")
    (old / "previous").symlink_to("0.2.0")
    assert layout.pointer("current") is None  # not seen before the move
    assert layout.adopt_old_layout()
    assert not old.exists() and layout.releases.is_dir()
    assert (layout.pointer("current"), layout.pointer("previous")) == ("0.3.0", "0.2.0")
    assert layout.is_installed("0.3.0") and layout.is_installed("0.2.0")
    assert not layout.adopt_old_layout()  # once
    old.mkdir()  # both there (made by hand): releases/ wins, versions/ is left alone
    assert not layout.adopt_old_layout() and old.is_dir() and layout.pointer("current") == "0.3.0"


def test_success_prunes_all_but_current_and_previous(layout: Layout) -> None:
    """After welcome only current and previous stay installed."""
    _as_before_the_update(layout)
    _installed(layout, "0.3.0")
    pending = _updater(layout).switch(_journal(Step.INSTALLING))
    _updater(layout).succeed(pending, None)
    assert sorted(p.name for p in layout.releases.iterdir()) == ["0.2.0", "0.3.0", "current", "previous"]
    assert layout.read_pending() is None


def test_a_damaged_staged_file_is_dropped(layout: Layout) -> None:
    """staged.json that is not an update (hand-edited, damaged) is removed, not a crash of the launcher."""
    layout.staged.write_text('{"version": "0.3.0", "nonsense": 1}')
    assert layout.read_staged() is None and not layout.staged.exists()
    layout.staged.write_text("{not json")
    assert layout.read_staged() is None and not layout.staged.exists()
