"""What a hub does with what other hubs tell it, and what it tells them (DESIGN §13).

Out: every dashboard event it publishes (presence, commands, device changes) and every identity
event (revocations, ended sessions, changed roles) becomes a notice; samples go out coalesced,
the newest per device, at most once a second. In: notices reach this hub's dashboards as
``Relayed`` events, and act on the sockets this hub holds: a command queued elsewhere is pushed,
a device online on another hub closes its socket here (4000), a revoked device's socket closes
(4001), a removed device's socket closes (4004), cached credentials are dropped, and alert rules,
notifiers or silences changed elsewhere are read again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from monitor_server.cluster import Cluster
from monitor_server.cluster.notice import (
    Kind,
    Notice,
    identity_event,
    of_bus_event,
    of_identity_event,
    samples_notice,
)
from monitor_server.events import HubEvent, Relayed
from monitor_server.identity.events import CredentialsChanged, DeviceRevoked, IdentityEvent, SessionsEnded
from monitor_server.store import PresenceEvent, Sample
from protocol.codes import CloseCode
from protocol.timestamps import to_epoch

if TYPE_CHECKING:
    from monitor_server.hub import Hub

log = logging.getLogger("monitor_server.cluster")

SAMPLES_EVERY = 1.0  # seconds: other hubs' dashboards get each device's newest sample this often
SAMPLES_PER_NOTICE = 500


class Relay:
    def __init__(self, hub: Hub, cluster: Cluster) -> None:
        self._hub = hub
        self._cluster = cluster
        self._relaying = False  # an identity event from another hub is not told back
        self._latest: dict[str, dict[str, Any]] = {}

    # Out

    def on_bus_event(self, event: HubEvent) -> None:
        notice = of_bus_event(event)
        if notice is not None:
            self._cluster.tell(notice)

    def on_identity_event(self, event: IdentityEvent) -> None:
        if not self._relaying:
            self._cluster.tell(of_identity_event(event))

    def note_sample(self, sample: Sample) -> None:
        self._latest[sample.device_id] = sample.to_json()

    async def run_samples(self) -> None:
        while True:
            await asyncio.sleep(SAMPLES_EVERY)
            latest, self._latest = self._latest, {}
            items = list(latest.items())
            for start in range(0, len(items), SAMPLES_PER_NOTICE):
                self._cluster.tell(samples_notice(dict(items[start : start + SAMPLES_PER_NOTICE])))

    def on_takeover(self, events: list[PresenceEvent]) -> None:
        for event in events:
            self._hub.presence.announce(event)

    async def on_revived(self) -> None:
        await self._hub.presence.reclaim(self._hub.sessions.device_ids())

    # In

    async def on_notice(self, notice: Notice) -> None:
        match notice.kind:
            case Kind.PRESENCE:
                await self._presence(notice)
            case Kind.COMMAND:
                await self._command(notice)
            case Kind.DEVICE_REMOVED:
                self._removed(notice)
            case Kind.SAMPLES:
                self._samples(notice)
            case Kind.IDENTITY:
                self._identity(notice)
                return
            case Kind.ROLLOUT:
                await self._hub.releases.rollout_changed(str(notice.body.get("version")))
                return
            case Kind.ALERT_CONFIG:
                if self._hub.alerts is not None:
                    await self._hub.alerts.config_changed(str(notice.body.get("what")))
                return
        if notice.kind != Kind.SAMPLES and notice.device_id:
            self._hub.bus.publish(Relayed(notice.device_id, notice.body))

    async def _presence(self, notice: Notice) -> None:
        """The device went online on another hub after its socket here opened: that socket is stale.

        A notice older than this hub's own session (it arrived late) changes nothing; nor does one
        the store already contradicts (the device is this hub's again).
        """
        device_id, body = notice.device_id, notice.body
        socket = self._hub.sessions.get(device_id) if device_id else None
        since = self._hub.presence.ws_since(device_id) if device_id else None
        if device_id is None or socket is None or not body.get("online") or since is None:
            return
        if to_epoch(str(body.get("at"))) <= since:
            return
        device = await self._hub.store.get_device(device_id)
        if device is None or device.hub_id in (None, self._cluster.hub_id):
            return
        self._hub.presence.forget(device_id)  # the other hub owns the session: record nothing here
        socket.abort(CloseCode.REPLACED, "replaced by a newer connection on another hub")

    async def _command(self, notice: Notice) -> None:
        """A command queued on another hub for a device connected here: push it now."""
        device_id, body = notice.device_id, notice.body
        if device_id is None or body.get("status") != "pending" or device_id not in self._hub.sessions:
            return
        command = await self._hub.store.get_command(device_id, int(body["id"]))
        if command is not None and command.state.value == "pending":
            self._hub.sessions.push(command)

    def _removed(self, notice: Notice) -> None:
        if notice.device_id is None:
            return
        self._hub.presence.forget(notice.device_id)
        self._hub.identity.authn.forget_device(notice.device_id)
        if self._hub.alerts is not None:
            self._hub.alerts.forget_device(notice.device_id, stored=False)  # the removing hub deletes them
        socket = self._hub.sessions.forget(notice.device_id)
        if socket is not None:
            socket.abort(CloseCode.REMOVED, "device removed")

    def _samples(self, notice: Notice) -> None:
        if not self._hub.bus.subscriber_count:
            return
        samples = notice.body.get("samples")
        for device_id, sample in samples.items() if isinstance(samples, dict) else ():
            self._hub.bus.publish(Relayed(device_id, {"type": "sample", "device_id": device_id, **sample}))

    def _identity(self, notice: Notice) -> None:
        event = identity_event(notice.body)
        if event is None:
            return
        authn = self._hub.identity.authn
        if isinstance(event, DeviceRevoked):
            authn.forget_device(event.device_id)
        elif isinstance(event, SessionsEnded):
            if event.session_hash is not None:
                authn.forget_digest(event.session_hash)
            elif event.user is not None:
                authn.forget_user(event.user)
        elif isinstance(event, CredentialsChanged):
            if event.user is not None:
                authn.forget_user(event.user)
            if event.key_id is not None:
                authn.forget_key(event.key_id)
        self._relaying = True
        try:
            self._hub.identity.listeners.emit(event)
        finally:
            self._relaying = False
