"""Hub-driven updates under faults (issue 15): a real hub, the real launcher and agent processes, real
bundles (built once per session: ``tests/bundles.py``).

- the hub is unreachable across the switch: every sample the two versions spooled meanwhile is
  stored after it, and a command queued just before the rollout runs once across both versions;
- the launcher and its agent are killed (-9) after the bundle is staged, or while the new version
  is on probation: started again, the agent ends on one version, online, and reports a final state;
- the ``update`` frame announces a SHA-256 the bundle does not have: refused (``hash_mismatch``),
  nothing staged, the running agent undisturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from monitor_agent.update.state import Layout, Pending, Staged, Step
from monitor_server.releases_cli import publish
from tests.agentd import acked, enqueue, eventually, samples
from tests.bundles import GOOD, Releases
from tests.hubs import RunningHub
from tests.integration.test_agent_update import (
    BASE,
    Launched,
    _clean,
    _reports,
    launcher,
    releases,
)
from tests.integration.test_ota_hub import _state
from tests.integration.test_samples_nothing_lost import drained
from tests.timing import t

__all__ = ["releases"]  # the fixture (its bundles built once per session), used here too

INTERVAL = 0.5  # the launcher's agents sample every 0.5 s (test_agent_update.launcher)
MAX_GAP = 1.25  # seconds between two stored samples, outside the restart of the agent at the switch
MAX_RESTART = 10.0  # the one gap the switch leaves: old agent stopped -> new agent's first sample


async def _publish(hub: RunningHub, releases: Releases) -> None:
    await asyncio.to_thread(publish, releases.good.path, releases.key, hub.settings.db, "test")


async def _rollout(api: httpx.AsyncClient, device_id: str) -> None:
    answer = await api.post(f"/releases/{GOOD}/rollout", json={"devices": [device_id]})
    assert answer.status_code == 201 and answer.json()["offered"] == 1, answer.text


async def _staged(layout: Layout) -> Staged:
    async def found() -> Staged | None:
        return layout.read_staged()

    staged = await eventually(found, within=60, what="the bundle downloaded, verified and staged")
    assert staged is not None
    return staged


async def _on_probation(layout: Layout) -> Pending:
    """The journal once the launcher switched and is starting the new version on probation."""

    async def started() -> Pending | None:
        pending = layout.read_pending()
        return pending if pending and pending.step is Step.PROBATION and pending.probations >= 1 else None

    pending = await eventually(started, within=90, what="the new version started on probation")
    assert pending is not None
    return pending


async def _installing(layout: Layout) -> None:
    async def under_way() -> bool:
        pending = layout.read_pending()
        return pending is not None and pending.step is Step.INSTALLING

    await eventually(under_way, within=30, what="the launcher installing the update")


async def _stored_times(api: httpx.AsyncClient, device_id: str) -> list[float]:
    return sorted(
        datetime.fromisoformat(s["ts"].replace("Z", "+00:00")).timestamp()
        for s in await samples(api, device_id)
    )


def _kill_9(run: Launched) -> None:
    """SIGKILL the launcher and everything under it (the agent, a pip install) at once.

    All are stopped first, so that none sees another die and acts on it (the launcher would roll
    back an agent that exits; the agent gets SIGTERM from the kernel when the launcher dies).
    """
    family = [psutil.Process(run.proc.pid)]
    family += family[0].children(recursive=True)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGSTOP)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    run.proc.wait(t(10))
    _, alive = psutil.wait_procs(family, timeout=t(10))
    assert not alive, alive


@pytest.mark.timeout(300)
async def test_hub_away_across_the_switch_loses_no_sample_and_runs_a_queued_command_once(
    releases: Releases, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The hub stops once the update is staged and returns after the new version sampled a while:
    the spooled samples are stored (one gap only, the agent's restart), the command
    queued before the rollout ran once (acked by 0.1.0 before the hub stopped; one "running command
    N" in both versions' log, the result still the one stored)."""
    await _publish(hub, releases)
    device_id = "ota-keep"
    with launcher(hub.http_url, hub.token, tmp_path / "state", releases.pub, device_id) as run:
        layout = run.layout
        await _reports(api, device_id, BASE)
        command_id = await enqueue(api, device_id, "echo", {"before": "rollout"})
        await _rollout(api, device_id)
        await _staged(layout)
        await eventually(lambda: acked(api, device_id, command_id), within=10, what="acked by 0.1.0")
        await hub.stop()
        hub_down = time.time()
        await _on_probation(layout)
        switched = time.time()
        await asyncio.sleep(t(3))  # the new version samples, with no hub to send to
        await hub.start()
        hub_up = time.time()
        await _reports(api, device_id, GOOD, within=60)
        await _state(api, GOOD, device_id, "installed")
        print(f"\nhub away {hub_up - hub_down:.1f}s")
        result = await eventually(lambda: acked(api, device_id, command_id), within=30, what="acked")
        assert result["success"] is True and result["result"]["args"] == {"before": "rollout"}, result
        await drained(layout.state_dir)
        assert layout.pointer("current") == GOOD
        log = run.log()
    assert log.count(f"running command {command_id} ") == 1, log
    times = await _stored_times(api, device_id)
    gaps = sorted(((b - a, a, b) for a, b in itertools.pairwise(times)), reverse=True)
    (widest, before, after), *others = gaps
    print(f"widest gap {widest:.2f}s, next {others[0][0]:.2f}s over {len(times)} samples")
    assert times[0] < hub_down and times[-1] > hub_up, (times[0], hub_down, hub_up, times[-1])
    assert widest <= t(MAX_RESTART), widest
    assert others[0][0] <= t(MAX_GAP), others[:3]
    if widest > t(MAX_GAP):
        # Longer than sampling leaves: the restart at the switch (a quick restart may leave none:
        # the new version can sample within one interval of the old one's last sample).
        window = (hub_down, before, switched, after, hub_up)
        assert hub_down - t(2) < before < switched and after < hub_up, window
    # Taken while the hub was away and stored after it came back: by the new version, on probation
    # from `switched` on (the old one may already be stopped for the switch when the hub goes).
    assert sum(switched <= ts < hub_up for ts in times) >= 2, (switched, hub_up)


async def _final(api: httpx.AsyncClient, device_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any]:
        for entry in (await api.get(f"/releases/{GOOD}")).json()["devices"]:
            if entry["device_id"] == device_id and entry["state"] in {"installed", "rolled_back"}:
                return dict(entry)
        return {}

    return await eventually(ended, within=120, what=f"{device_id} reports a final state")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("at", ["staged", "installing", "probation"])
async def test_kill_9_of_the_launcher_during_a_hub_driven_update_ends_on_one_version(
    releases: Releases, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, at: str
) -> None:
    """Launcher and agent killed (-9) once the bundle is staged, during its install (pip running),
    or while 0.2.0 is on probation (the hub away, so not welcomed yet); the launcher started again: the
    agent runs the version ``current`` names, online, and the hub has installed or rolled_back."""
    await _publish(hub, releases)
    device_id = f"ota-kill-{at}"
    state = tmp_path / "state"
    with launcher(hub.http_url, hub.token, state, releases.pub, device_id) as run:
        layout = run.layout
        await _reports(api, device_id, BASE)
        await _rollout(api, device_id)
        await _staged(layout)
        if at == "probation":
            await hub.stop()  # no welcome: 0.2.0 stays on probation until the kill
            await _on_probation(layout)
            await asyncio.sleep(t(1))
        elif at == "installing":
            await _installing(layout)
        _kill_9(run)
        killed_at = layout.read_pending()
        if at == "probation":
            await hub.start()
    print(f"\nkilled at {killed_at and killed_at.step}")
    if at != "staged":
        assert killed_at is not None and killed_at.step.value == at, killed_at
    started = time.monotonic()
    with launcher(hub.http_url, hub.token, state, releases.pub, device_id) as run:
        final = await _final(api, device_id)
        running = layout.pointer("current") or BASE
        assert running == (GOOD if final["state"] == "installed" else BASE), (final, running)
        await _reports(api, device_id, running, within=60)
        print(f"after the restart: {final['state']} on {running} in {time.monotonic() - started:.1f}s")

        async def settled() -> bool:
            return layout.read_pending() is None and layout.read_staged() is None

        await eventually(settled, within=30, what="no update left under way")
        _clean(layout)
        assert run.proc.poll() is None, run.log()
        assert (await api.get(f"/devices/{device_id}")).json()["online"]
    # The hub offered the release again when 0.1.0 reconnected: not a failure of the release, so
    # the rollout (of one device) must not have paused itself.
    assert not (await api.get(f"/releases/{GOOD}")).json()["rollout"]["paused"], run.log()


@pytest.mark.timeout(300)
async def test_a_wrong_sha256_in_the_update_frame_is_refused_and_nothing_is_staged(
    releases: Releases, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The stored release's hash is another bundle's: the agent downloads the real bundle, finds
    it does not match, reports failed (hash_mismatch), stages nothing, and runs on, online."""
    await _publish(hub, releases)
    other = hashlib.sha256(releases.broken.path.read_bytes()).hexdigest()
    with sqlite3.connect(hub.settings.db) as db:
        db.execute("UPDATE releases SET sha256 = ? WHERE version = ?", (other, GOOD))
    device_id = "ota-wrong-hash"
    with launcher(hub.http_url, hub.token, tmp_path / "state", releases.pub, device_id) as run:
        layout = run.layout
        await _reports(api, device_id, BASE)
        await _rollout(api, device_id)
        failed = await _state(api, GOOD, device_id, "failed")
        assert failed["reason"].startswith("update_failed: hash_mismatch: "), failed
        assert layout.read_staged() is None and layout.read_pending() is None
        assert not list(layout.update.glob(".download-*")) and not list(layout.incoming.glob("*"))
        assert layout.pointer("current") is None and not layout.version_dir(GOOD).exists()
        assert "installing update" not in run.log()
        assert run.proc.poll() is None
        await _reports(api, device_id, BASE)
