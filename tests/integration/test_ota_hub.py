"""A real update offered by the hub (DESIGN §12): the launcher's agent on 0.1.0 gets the rollout of
0.2.0, downloads it, the launcher installs it and the agent reconnects as 0.2.0 reporting
``installed``; then a broken 0.3.0 is rolled back, reported ``rolled_back`` with the reason
``update_failed: exited: ...``, and its rollout pauses.

The bundles come from ``tests/bundles.py`` (built once per session), the launcher from
``test_agent_update.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor_server.releases_cli import publish
from tests.agentd import eventually
from tests.bundles import BROKEN, GOOD, Releases
from tests.hubs import RunningHub
from tests.integration.test_agent_update import BASE, _reports, launcher, releases

__all__ = ["releases"]  # the fixture (its bundles built once per session), used here too


async def _state(api: httpx.AsyncClient, version: str, device_id: str, wanted: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        for entry in (await api.get(f"/releases/{version}")).json()["devices"]:
            if entry["device_id"] == device_id and entry["state"] == wanted:
                return dict(entry)
        return {}

    return await eventually(reached, within=90, what=f"{device_id} {wanted} {version}")


async def _paused(api: httpx.AsyncClient, version: str) -> None:
    async def paused() -> bool:
        return bool((await api.get(f"/releases/{version}")).json()["rollout"]["paused"])

    await eventually(paused, within=30, what=f"rollout of {version} paused")


@pytest.mark.timeout(300)
async def test_rollout_updates_the_agent_and_a_broken_release_rolls_back_and_pauses(
    releases: Releases, hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Publish + rollout: 0.2.0 installed and reported; 0.3.0 (exits at start) rolled back, rollout paused."""
    db = hub.settings.db
    for signed in (releases.good, releases.broken):
        await asyncio.to_thread(publish, signed.path, releases.key, db, "test")
    with launcher(hub.http_url, hub.token, tmp_path / "state", releases.pub, "ota-e2e") as run:
        await _reports(api, "ota-e2e", BASE)
        started = time.monotonic()
        answer = await api.post(f"/releases/{GOOD}/rollout", json={"devices": ["ota-e2e"]})
        assert answer.status_code == 201 and answer.json()["offered"] == 1, answer.text
        await _reports(api, "ota-e2e", GOOD, within=90)
        print(f"\nrollout -> reconnected as {GOOD}: {time.monotonic() - started:.1f}s")
        await _state(api, GOOD, "ota-e2e", "installed")
        assert run.layout.pointer("current") == GOOD

        started = time.monotonic()
        answer = await api.post(f"/releases/{BROKEN}/rollout", json={"devices": ["ota-e2e"]})
        assert answer.json()["offered"] == 1, answer.text
        failed = await _state(api, BROKEN, "ota-e2e", "rolled_back")
        print(f"\nrollout -> rolled back and reported: {time.monotonic() - started:.1f}s")
        # The agent reports update_failed with the code and the launcher's reason (DESIGN §12).
        assert failed["reason"].startswith("update_failed: exited: the new version exited"), failed
        assert "before reaching welcome" in failed["reason"], failed
        # The failure is stored (and shown) first, then judged: the pause follows it.
        await _paused(api, BROKEN)
        await _reports(api, "ota-e2e", GOOD)
        assert run.layout.pointer("current") == GOOD
