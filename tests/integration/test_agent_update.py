"""Over-the-air updates on the agent's side, with real bundles, signatures, virtualenvs and processes.

Bundles are built once per module from copies of this tree with another version: 0.2.0 (good) with
``monitor-agent bundle``, and 0.3.0 (broken: ``run`` exits at once) from the same wheels with the
project's wheel rewritten. ``monitor-agent launch`` runs against a real hub; the launcher runs this
tree's agent (0.1.0) until an update is applied. Each install is a real ``venv`` + ``pip install
--no-index`` (about 5 s here), so the tests install as few times as they can.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_agent import __version__ as BASE
from monitor_agent.update.install import Updater, stage
from monitor_agent.update.state import Layout
from monitor_server.releases_cli import keygen, signature_of
from protocol.release import extract_wheels, manifest_for, write_bundle
from tests.agentd import device, eventually, free_port
from tests.hubs import RunningHub
from tests.timing import t

REPO = Path(__file__).resolve().parents[2]
GOOD, BROKEN = "0.2.0", "0.3.0"


@dataclass(frozen=True)
class Signed:
    path: Path
    version: str
    sha256: str
    signature: str


@dataclass(frozen=True)
class Releases:
    key: Path  # release.key
    pub: Path  # release.pub
    good: Signed
    broken: Signed


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=t(300), check=False, **kwargs)


def _source(dest: Path, version: str) -> Path:
    """A copy of this tree that says it is ``version``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("protocol", "monitor_agent", "monitor_server"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    for path, pattern in (
        (dest / "pyproject.toml", r'^version = ".*"$'),
        (dest / "monitor_agent" / "__init__.py", r'^__version__ = ".*"$'),
    ):
        text, count = re.subn(
            pattern, pattern.split(" = ")[0].lstrip("^") + f' = "{version}"', path.read_text(), flags=re.M
        )
        assert count == 1, path
        path.write_text(text)
    return dest


def _signed(bundle: Path, key: Path) -> Signed:
    body = signature_of(bundle, key)
    return Signed(bundle, body["version"], body["sha256"], body["signature"])


def _rebuilt_wheel(wheel: Path, dest: Path, version: str) -> Path:
    """``wheel`` (the project's) as ``version`` whose ``run`` exits at once: a release broken at start.

    Rewritten rather than rebuilt (a build takes seconds): the files, the .dist-info folder's name,
    METADATA's version and RECORD's hashes, as pip expects them.
    """
    old = wheel.name.split("-")[1]
    out = dest / wheel.name.replace(f"-{old}-", f"-{version}-")
    head = "def _run(args: argparse.Namespace) -> int:\n"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as source:
        for name in source.namelist():
            data = source.read(name)
            name = name.replace(f"monitor-{old}.dist-info/", f"monitor-{version}.dist-info/")
            if name == "monitor_agent/__init__.py":
                data = data.replace(f'__version__ = "{old}"'.encode(), f'__version__ = "{version}"'.encode())
            elif name == "monitor_agent/cli.py":
                data = data.replace(
                    head.encode(), (head + '    raise SystemExit("broken release")\n').encode()
                )
            elif name.endswith(".dist-info/METADATA"):
                data = data.replace(f"\nVersion: {old}\n".encode(), f"\nVersion: {version}\n".encode())
            files[name] = data
    record = next(name for name in files if name.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in files.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{name},sha256={digest},{len(data)}")
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in files.items():
            target.writestr(name, data)
    return out


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    """A key pair, the good bundle (``monitor-agent bundle``) and the broken one, signed."""
    root = tmp_path_factory.mktemp("releases")
    key, pub = keygen(root / "keys")
    good = root / f"agent-{GOOD}.zip"
    source = _source(root / "good", GOOD)
    built = _run(
        [sys.executable, "-m", "monitor_agent", "bundle", "--out", str(good), "--source", str(source)]
    )
    assert built.returncode == 0, built.stderr
    # The broken release: the good one's wheels, the project's rewritten as 0.3.0.
    unpacked, wheels = root / "unpacked", root / "broken-wheels"
    manifest = extract_wheels(good, unpacked)
    wheels.mkdir()
    for wheel in manifest.wheels:
        if wheel.name.startswith("monitor-"):
            _rebuilt_wheel(unpacked / wheel.name, wheels, BROKEN)
        else:
            shutil.copy(unpacked / wheel.name, wheels / wheel.name)
    broken = root / f"agent-{BROKEN}.zip"
    write_bundle(
        broken, manifest_for(wheels, BROKEN, manifest.python, manifest.platform, manifest.created_at), wheels
    )
    return Releases(key, pub, _signed(good, key), _signed(broken, key))


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
    server: str, token: str, state: Path, pub: Path, device_id: str, deadline: float = 60
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
    if layout.versions.exists():
        assert {p.name for p in layout.versions.iterdir()} <= {"current", "previous", *live}
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
        version = _run([str(layout.versions / "current" / "bin" / "monitor-agent"), "--version"])
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
        assert failed["status"] == "update_failed" and failed["code"] == "rolled_back", failed
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


async def test_a_release_that_never_reaches_welcome_is_rolled_back_at_the_deadline(
    releases: Releases, tmp_path: Path
) -> None:
    """No hub answers: the new version runs but is never welcomed, so the deadline rolls it back."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    with launcher(nowhere, "x" * 32, tmp_path / "state", releases.pub, "upd-late", deadline=2) as run:
        _stage(run.layout, releases.good, releases.pub)
        result = await _result(run.layout, 60, "the rollback's result")
        assert result["status"] == "update_failed", result
        assert f"did not reach welcome within {t(2):g}s" in result["reason"]
        assert run.layout.pointer("current") is None
        assert run.proc.poll() is None  # the launcher runs 0.1.0 again
        _clean(run.layout)


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
    wrong = _signed(good.path, other_key)

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
from monitor_agent.update.state import Layout
state, pub, at, fail = sys.argv[1:5]
def checkpoint(name):
    if name == at:
        os.kill(os.getpid(), signal.SIGKILL)
updater = Updater(Layout(Path(state)), "{base}", Path(pub).read_bytes(), checkpoint)
pending = updater.install_staged(updater.layout.read_staged())
pending = updater.switch(pending)
if fail:
    updater.roll_back(pending, "failed on probation", updater.layout.read_staged())
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
