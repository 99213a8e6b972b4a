"""Over-the-air updates on the agent's side, with real bundles, signatures, virtualenvs and processes.

Bundles are built once per session (tests/bundles.py) from copies of this tree with another version:
0.2.0 (good) with ``monitor-agent bundle``, and 0.3.0 (broken: ``run`` exits at once) from the same
wheels with the project's wheel rewritten. ``monitor-agent launch`` runs against a real hub; the
launcher runs this tree's agent (0.1.0) until an update is applied. Each install is a real ``venv``
+ ``pip install --no-index`` (about 5 s here), so the tests install as few times as they can.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_agent import __version__ as BASE
from monitor_agent.update.install import Updater, stage
from monitor_agent.update.state import INSTALLED_MARK, Layout, Pending, Step
from monitor_server.releases_cli import keygen
from tests.agentd import device, eventually, free_port
from tests.bundles import BROKEN, GOOD, Releases, Signed, release_bundles, sign_bundle
from tests.bundles import run as _run
from tests.hubs import RunningHub
from tests.timing import t

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    """A key pair, the good bundle (``monitor-agent bundle``) and the broken one, signed (built
    once per session: tests/bundles.py)."""
    return release_bundles(tmp_path_factory)


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    log_path: Path
    layout: Layout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(t(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in re.findall(r"started: pid (\d+)", self.log()):  # children left by a kill -9
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def launcher(
    server: str,
    token: str,
    state: Path,
    pub: Path,
    device_id: str,
    deadline: float = 60,
    extra: tuple[str, ...] = (),
) -> Iterator[Launched]:
    """``monitor-agent launch`` as systemd would run it, with this tree as the launcher's install."""
    state.mkdir(parents=True, exist_ok=True)
    log_path = state.parent / f"{state.name}-launcher.log"
    argv = [
        sys.executable,
        "-m",
        "monitor_agent",
        "launch",
        "--release-key",
        str(pub),
        "--update-deadline",
        str(t(deadline)),
        "--server",
        server,
        "--token",
        token,
        "--state-dir",
        str(state),
        "--device-id",
        device_id,
        "--interval",
        "0.5",
        "--backoff-base",
        "0.1",
        "--backoff-cap",
        "0.5",
        *extra,
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    launched = Launched(proc, log_path, Layout(state))
    try:
        yield launched
    finally:
        launched.stop()


def _stage(layout: Layout, release: Signed, pub: Path, **kwargs: Any) -> None:
    stage(layout, release.path, release.sha256, release.signature, pub.read_bytes(), BASE, **kwargs)


async def _result(layout: Layout, within: float, what: str) -> dict[str, Any]:
    async def written() -> dict[str, Any] | None:
        return layout.read_result()

    result = await eventually(written, within=within, what=what)
    assert result is not None
    return result


async def _reports(api: httpx.AsyncClient, device_id: str, version: str, within: float = 20) -> None:
    async def online() -> bool:
        entry = await device(api, device_id)
        return bool(entry and entry["online"] and entry.get("agent_version") == version)

    await eventually(online, within=within, what=f"{device_id} online as {version}")


def _clean(layout: Layout) -> None:
    """Nothing half-done: no journal, no staged update, no temporary link or partial install."""
    assert layout.read_pending() is None
    assert layout.read_staged() is None
    live = {v for v in (layout.pointer("current"), layout.pointer("previous")) if v}
    assert all(layout.is_installed(version) for version in live), live
    if layout.releases.exists():
        assert {p.name for p in layout.releases.iterdir()} <= {"current", "previous", *live}
    # result-reported.json: the agent told the hub about result.json (update/receive.py)
    left = {p.name for p in layout.update.iterdir() if not p.name.startswith("welcome-")}
    assert sorted(left - {"result-reported.json"}) in (["incoming", "result.json"], ["incoming"])
    assert not list(layout.incoming.iterdir())


async def test_an_update_switches_and_a_broken_one_after_it_is_rolled_back(
    releases: Releases, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """0.2.0 is installed beside 0.1.0 and welcomed; 0.3.0, which exits at start, goes back to 0.2.0."""
    with launcher(hub.http_url, hub.token, tmp_path / "state", releases.pub, "upd-ok") as run:
        layout = run.layout
        await _reports(api, "upd-ok", BASE)
        started = time.monotonic()
        _stage(layout, releases.good, releases.pub)
        result = await _result(layout, 60, "the update's result")
        assert result["status"] == "installed", (result, run.log())
        await _reports(api, "upd-ok", GOOD)
        print(f"\nstaged -> reconnected as {GOOD}: {time.monotonic() - started:.1f}s")
        assert layout.pointer("current") == GOOD and layout.pointer("previous") is None
        version = _run([str(layout.releases / "current" / "bin" / "monitor-agent"), "--version"])
        assert version.stdout.strip() == f"monitor-agent {GOOD}", version
        _clean(layout)

        layout.welcome_marker(GOOD).unlink()
        started = time.monotonic()
        _stage(layout, releases.broken, releases.pub)

        async def rolled_back() -> dict[str, Any] | None:
            result = layout.read_result()
            return result if result and result["version"] == BROKEN else None

        failed = await eventually(rolled_back, within=60, what="the broken update's result")
        print(f"\nstaged -> rolled back: {time.monotonic() - started:.1f}s")
        assert failed is not None
        assert failed["status"] == "update_failed" and failed["code"] == "exited", failed
        assert "exited with status 1 before reaching welcome" in failed["reason"]
        assert failed["rolled_back_to"] == GOOD
        assert layout.pointer("current") == GOOD and layout.pointer("previous") is None
        assert not layout.version_dir(BROKEN).exists()

        async def welcomed_again() -> bool:
            return layout.welcome_marker(GOOD).exists()

        await eventually(welcomed_again, within=20, what="0.2.0 welcomed by the hub again")
        await _reports(api, "upd-ok", GOOD)
        _clean(layout)
        run.proc.terminate()  # as systemd stops it: the agent flushes and both exit 0
        assert run.proc.wait(t(20)) == 0, run.log()
        assert "monitor-agent stopped" in run.log().rsplit("rolled back", 1)[-1]

    # The installs' folder as the launcher's first builds named it (versions/), in a state folder
    # moved elsewhere: the launcher renames it to releases/ at start, and the virtualenv, made at
    # a path that no longer exists, still runs (through its bin/python, not its scripts' #! line).
    moved = Layout(tmp_path / "moved")
    layout.state_dir.rename(moved.state_dir)
    (moved.state_dir / "releases").rename(moved.state_dir / "versions")
    moved.welcome_marker(GOOD).unlink()

    async def welcomed_after_the_move() -> bool:
        return moved.welcome_marker(GOOD).exists()

    with launcher(hub.http_url, hub.token, moved.state_dir, releases.pub, "upd-ok") as run:
        await eventually(welcomed_after_the_move, within=20, what="0.2.0 run from the moved folder")
        assert not (moved.state_dir / "versions").exists(), run.log()
        assert moved.pointer("current") == GOOD and moved.is_installed(GOOD)
        assert "moved versions to releases" in run.log()
        await _reports(api, "upd-ok", GOOD)


async def test_a_release_that_never_reaches_welcome_is_rolled_back_at_the_deadline(
    releases: Releases, tmp_path: Path
) -> None:
    """No hub answers: the new version runs but is never welcomed, so the deadline rolls it back."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    with launcher(nowhere, "x" * 32, tmp_path / "state", releases.pub, "upd-late", deadline=2) as run:
        _stage(run.layout, releases.good, releases.pub)
        result = await _result(run.layout, 60, "the rollback's result")
        assert result["status"] == "update_failed" and result["code"] == "no_welcome", result
        assert f"did not reach welcome within {t(2):g}s" in result["reason"]
        assert run.layout.pointer("current") is None
        assert run.proc.poll() is None  # the launcher runs 0.1.0 again
        _clean(run.layout)


# A stand-in for an installed release: this tree's agent saying it is another version, run by a
# bin/python that is this test's interpreter (what the launcher runs: releases/current/bin/python
# releases/current/bin/monitor-agent run ...). No install: the process and the probation are real.
_STAND_IN = """import monitor_agent
monitor_agent.__version__ = "{version}"
from monitor_agent.cli import main
raise SystemExit(main())
"""


def _stand_in_release(layout: Layout, version: str) -> None:
    folder = layout.version_dir(version)
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (folder / "bin" / "monitor-agent").write_text(_STAND_IN.replace("{version}", version))
    (folder / INSTALLED_MARK).write_text(version)


async def test_an_http_transport_agent_passes_probation_at_its_first_answered_exchange(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """``--transport http`` has no ``welcome``: its first exchange with the hub that goes through
    writes the same ``update/welcome-<version>``, so the launcher keeps a good version rather than
    roll it back at the deadline."""
    _, pub = keygen(tmp_path / "keys")
    layout = Layout(tmp_path / "state")
    _stand_in_release(layout, "0.9.0")
    layout.set_pointer("current", "0.9.0")  # switched, as the launcher leaves it before probation
    layout.write_pending(Pending("0.9.0", Step.PROBATION, old_current=None, old_previous=None))
    started = time.monotonic()
    extra = ("--transport", "http")
    with launcher(
        hub.http_url, hub.token, layout.state_dir, pub, "upd-http", deadline=20, extra=extra
    ) as run:
        result = await _result(layout, t(30), "the probation's result")
        assert result == {**result, "status": "installed", "version": "0.9.0"}, (result, run.log())
        assert time.monotonic() - started < t(20), "ended by the deadline, not by the exchange"
        assert layout.pointer("current") == "0.9.0" and layout.read_pending() is None
        await _reports(api, "upd-http", "0.9.0")
        assert run.proc.poll() is None, run.log()


def test_tampered_wrongly_signed_and_older_bundles_are_refused_before_staging(
    releases: Releases, tmp_path: Path
) -> None:
    """`monitor-agent update stage` refuses each with a clear reason and stages nothing."""
    state = tmp_path / "state"
    layout = Layout(state)
    good = releases.good
    tampered = tmp_path / "tampered.zip"
    data = bytearray(good.path.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    other_key, _ = keygen(tmp_path / "other")
    wrong = sign_bundle(good.path, other_key)

    def stage_cli(bundle: Path, sha256: str, signature: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = ["update", "stage", str(bundle), "--sha256", sha256, "--signature", signature]
        argv += ["--release-key", str(releases.pub), "--state-dir", str(state), *extra]
        return _run([sys.executable, "-m", "monitor_agent", *argv])

    refused = stage_cli(tampered, good.sha256, good.signature)
    assert refused.returncode == 1 and "hash_mismatch" in refused.stderr, refused.stderr
    refused = stage_cli(good.path, wrong.sha256, wrong.signature)
    assert refused.returncode == 1 and "bad_signature" in refused.stderr, refused.stderr
    assert layout.read_staged() is None
    layout.set_pointer("current", BROKEN)  # as if 0.3.0 ran: 0.2.0 is a downgrade
    refused = stage_cli(good.path, good.sha256, good.signature)
    assert refused.returncode == 1 and "downgrade" in refused.stderr, refused.stderr
    assert layout.read_staged() is None
    allowed = stage_cli(good.path, good.sha256, good.signature, "--allow-downgrade")
    assert allowed.returncode == 0, allowed.stderr
    staged = layout.read_staged()
    assert staged is not None and staged.version == GOOD and staged.allow_downgrade


def test_a_bundle_swapped_after_staging_is_refused_by_the_launcher(
    releases: Releases, tmp_path: Path
) -> None:
    """The launcher checks the hash again: a bundle replaced on disk is refused, nothing installed."""
    layout = Layout(tmp_path / "state")
    _stage(layout, releases.good, releases.pub)
    staged = layout.read_staged()
    assert staged is not None
    shutil.copy(releases.broken.path, layout.incoming / staged.bundle)
    assert Updater(layout, BASE, releases.pub.read_bytes()).install_staged(staged) is None
    result = layout.read_result()
    assert result is not None and result["status"] == "refused" and result["code"] == "hash_mismatch", result
    assert layout.pointer("current") is None and not layout.version_dir(GOOD).exists()
    _clean(layout)


# kill -9 at each step: a subprocess runs the launcher's update steps and kills itself at one.
_KILLER = """
import os, signal, sys
from pathlib import Path
from monitor_agent.update.install import Updater
from monitor_agent.update.state import Layout, Rollback
state, pub, at, fail = sys.argv[1:5]
def checkpoint(name):
    if name == at:
        os.kill(os.getpid(), signal.SIGKILL)
updater = Updater(Layout(Path(state)), "{base}", Path(pub).read_bytes(), checkpoint)
pending = updater.install_staged(updater.layout.read_staged())
pending = updater.switch(pending)
if fail:
    updater.roll_back(pending, Rollback.EXITED, "failed on probation", updater.layout.read_staged())
print("not killed")
"""


@pytest.mark.parametrize(
    ("at", "bundle", "expect"),
    [
        ("venv", "good", GOOD),  # installing: the venv exists, nothing installed in it
        ("installed", "good", GOOD),  # installed, not switched
        ("switched-previous", "good", GOOD),  # switching: previous moved, current not yet
        ("probation", "good", GOOD),  # switched, the new version never started
        ("rolling_back", "broken", BASE),  # rolling back: the journal says so, nothing moved yet
    ],
)
async def test_kill_9_at_each_step_is_repaired_by_the_next_launcher_start(
    releases: Releases,
    hub: RunningHub,
    api: httpx.AsyncClient,
    tmp_path: Path,
    at: str,
    bundle: str,
    expect: str,
) -> None:
    """After SIGKILL at ``at`` the next launcher start finishes or undoes the step; a good version runs."""
    release = releases.good if bundle == "good" else releases.broken
    layout = Layout(tmp_path / "state")
    _stage(layout, release, releases.pub)
    killed = _run(
        [
            sys.executable,
            "-c",
            _KILLER.replace("{base}", BASE),
            str(layout.state_dir),
            str(releases.pub),
            at,
            "1" if bundle == "broken" else "",
        ],
        cwd=REPO,
    )
    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr)
    assert layout.read_pending() is not None
    device_id = f"upd-kill-{at}"
    with launcher(hub.http_url, hub.token, layout.state_dir, releases.pub, device_id) as run:
        await _reports(api, device_id, expect, within=60)
        result = await _result(layout, 30, "the repaired update's result")
        assert result["status"] == ("installed" if expect == GOOD else "update_failed"), (result, run.log())
        assert layout.pointer("current") == (GOOD if expect == GOOD else None)
        _clean(layout)
