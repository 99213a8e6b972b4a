"""Agent releases on the hub (DESIGN §12): rollouts, offers to connected agents, their progress.

A rollout targets a release at ``{"percent": n}`` (a stable hash of the device id below n, so a
device stays in or out as the percentage grows), ``{"devices": [..]}`` or ``{"tags": [..]}``. The
hub offers the release (an ``update`` frame) to each targeted agent it holds that announced the
``updates`` capability and runs another version: when the rollout is created (here, or on another
hub: the ``rollout`` notice) and when such an agent says hello. An agent whose update of that
version failed or was rolled back is not offered it again at hello (only by a new rollout).

Progress comes back in ``update_status`` frames and is stored per (version, device); a ``failed``
or ``rolled_back`` one carries the reason ``update_failed: <code>: ...`` and is logged as such. A rollout
pauses itself when more than ``PAUSE_SHARE`` of the devices that reported on it (counting at least
``PAUSE_SAMPLE``) failed or rolled back: no more offers until a new rollout of that version.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor_server.events import ReleaseProgress, RolloutChanged
from monitor_server.store import Store
from monitor_server.store.release_records import DeviceUpdateState, Release, ReleaseDevice, Rollout
from protocol.codec import encode
from protocol.codes import Capability
from protocol.frames import UpdateFrame, UpdateStatus
from protocol.release import UPDATE_FAILED

if TYPE_CHECKING:
    from monitor_server.agent_socket import AgentSocket
    from monitor_server.sessions import SessionRegistry

log = logging.getLogger("monitor_server.releases")

PAUSE_SHARE = 0.2
PAUSE_SAMPLE = 10
# Downloads are spread: an agent starts within ``jitter`` s, SPREAD s per agent offered at once (the
# agents this hub holds, at hello: a reconnect storm), at most MAX_JITTER s.
SPREAD = 0.1
MAX_JITTER = 300.0
_FAILED = {DeviceUpdateState.FAILED.value, DeviceUpdateState.ROLLED_BACK.value}


def bundle_path(version: str) -> str:
    """Where agents download a release's bundle (relative to the hub they are connected to)."""
    return f"/releases/{version}/bundle"


def in_percent(device_id: str, percent: float) -> bool:
    """Whether ``device_id`` falls in the first ``percent`` of the fleet (stable for a device)."""
    bucket = int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big") % 10_000
    return bucket < percent * 100


def targets(rollout: Rollout, device_id: str, tags: set[str]) -> bool:
    """Whether ``rollout`` is meant for this device (``tags``: the operators' and the agent's)."""
    target = rollout.target
    if "devices" in target:
        return device_id in target["devices"]
    if "tags" in target:
        return bool(tags & set(target["tags"]))
    return in_percent(device_id, float(target.get("percent", 0)))


class ReleaseService:
    """Rollouts kept in memory (few, read at every hello) and the offers they make."""

    def __init__(
        self,
        store: Store,
        sessions: SessionRegistry,
        changed: Callable[[str], None] = lambda version: None,
        publish: Callable[[ReleaseProgress | RolloutChanged], None] = lambda event: None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._changed = changed  # tells the other hubs (their cached rollouts: a pause)
        self._publish = publish  # tells dashboards (the bus): progress and rollouts
        self._rollouts: dict[str, tuple[Rollout, Release]] = {}

    async def load(self) -> None:
        """Read every rollout and its release from the store (at start and when one changes)."""
        loaded: dict[str, tuple[Rollout, Release]] = {}
        for rollout in await self._store.list_rollouts():
            release = await self._store.get_release(rollout.version)
            if release is not None:
                loaded[rollout.version] = (rollout, release)
        self._rollouts = loaded

    def paused_versions(self) -> set[str]:
        """Versions whose rollout is paused, as this hub last read them."""
        return {version for version, (rollout, _) in self._rollouts.items() if rollout.paused}

    async def rollout_changed(self, version: str) -> int:
        """A rollout of ``version`` was saved (here or on another hub): offer it to the agents here."""
        await self.load()
        if version not in self._rollouts:
            return 0
        rollout, release = self._rollouts[version]
        self._publish(RolloutChanged(rollout))
        sockets = [s for d in self._sessions.device_ids() if (s := self._sessions.get(d)) is not None]
        chosen = [s for s in sockets if await self._wanted(s, rollout, release, retry_failed=True)]
        jitter = _jitter(len(chosen))
        for socket in chosen:
            await self._send_offer(socket, rollout, release, jitter)
        offered = len(chosen)
        log.info("rollout of %s: offered to %d connected agents here", version, offered)
        return offered

    async def on_connected(self, socket: AgentSocket) -> None:
        """An agent said hello: offer it the newest rollout that targets it, if any."""
        for rollout, release in sorted(self._rollouts.values(), key=lambda pair: -pair[0].created_at):
            if await self._wanted(socket, rollout, release, retry_failed=False):
                await self._send_offer(socket, rollout, release, _jitter(len(self._sessions)))
                return

    async def _wanted(
        self, socket: AgentSocket, rollout: Rollout, release: Release, retry_failed: bool
    ) -> bool:
        """Whether ``rollout`` is for this agent now."""
        hello = socket.session.hello
        if rollout.paused or hello is None or Capability.UPDATES not in hello.capabilities:
            return False
        if hello.agent_version == release.version:
            return False
        tags = set(hello.tags)
        if "tags" in rollout.target:
            device = await self._store.get_device(socket.device_id)
            tags |= set(device.all_tags()) if device is not None else set()
        if not targets(rollout, socket.device_id, tags):
            return False
        known = await self._store.get_release_device(release.version, socket.device_id)
        return retry_failed or known is None or known.state not in _FAILED

    async def _send_offer(
        self, socket: AgentSocket, rollout: Rollout, release: Release, jitter: float
    ) -> None:
        await self._store_state(
            ReleaseDevice(release.version, socket.device_id, DeviceUpdateState.OFFERED.value, "", time.time())
        )
        frame = UpdateFrame(
            version=release.version,
            sha256=release.sha256,
            signature=release.signature,
            url=bundle_path(release.version),
            allow_downgrade=rollout.allow_downgrade,
            jitter=jitter,
        )
        socket.send(encode(frame))
        log.info("offered release %s to agent %s", release.version, socket.device_id)

    async def on_status(self, device_id: str, status: UpdateStatus) -> None:
        """Store an agent's progress; pause the rollout when too many of its devices failed."""
        if await self._store.get_release(status.version) is None:
            log.warning("agent %s reports on unknown release %s", device_id, status.version)
            return
        await self._store_state(
            ReleaseDevice(status.version, device_id, status.state, status.reason, time.time())
        )
        if status.state in _FAILED:
            # The agent's reason reads "update_failed: <code>: ..." (protocol.release.failure_reason).
            detail = status.reason.removeprefix(f"{UPDATE_FAILED}: ")
            log.warning(
                "agent %s: %s: update to %s %s: %s",
                device_id,
                UPDATE_FAILED,
                status.version,
                status.state,
                detail,
            )
            await self._maybe_pause(status.version)
        else:
            log.info("agent %s: update to %s %s %s", device_id, status.version, status.state, status.reason)

    async def _store_state(self, entry: ReleaseDevice) -> None:
        await self._store.set_release_device(entry)
        self._publish(ReleaseProgress(entry))

    async def _maybe_pause(self, version: str) -> None:
        rollout = await self._store.get_rollout(version)
        if rollout is None or rollout.paused:
            return
        # Only what happened since this rollout: an earlier one's failures were judged already.
        states = [
            s for s in await self._store.list_release_devices(version) if s.updated_at >= rollout.created_at
        ]
        failed = sum(1 for entry in states if entry.state in _FAILED)
        reported = sum(1 for entry in states if entry.state != DeviceUpdateState.OFFERED.value)
        if failed <= PAUSE_SHARE * max(1, min(reported, PAUSE_SAMPLE)):
            return
        # Not a rollout saved since (a new POST): that one starts unpaused.
        if await self._store.pause_rollout(version, rollout.created_at):
            await self.load()
            if version in self._rollouts:
                self._publish(RolloutChanged(self._rollouts[version][0]))
            self._changed(version)
            log.warning("rollout of %s paused: %d of %d devices failed", version, failed, reported)


def _jitter(agents: int) -> float:
    return round(min(MAX_JITTER, SPREAD * agents), 3)


def summary(states: list[ReleaseDevice]) -> dict[str, Any]:
    """Counts per state and the list, as ``GET /releases/{version}`` shows them."""
    counts = {state.value: 0 for state in DeviceUpdateState}
    for entry in states:
        counts[entry.state] = counts.get(entry.state, 0) + 1
    return {"counts": counts, "devices": [entry.to_json() for entry in states]}
