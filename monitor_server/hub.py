"""The hub's services, built once per application from its settings and owned by its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor_server.alerts import AlertService
from monitor_server.bus import EventBus
from monitor_server.cluster import Cluster, open_cluster
from monitor_server.cluster.notice import Kind, Notice
from monitor_server.cluster.relay import Relay
from monitor_server.commands import CommandService
from monitor_server.events import DeviceRemoved, SampleEvent
from monitor_server.group_commit import GroupCommit
from monitor_server.identity import Identity
from monitor_server.identity.audit import AuditAction
from monitor_server.identity.principals import Principal
from monitor_server.idle import run_idle_sweeper
from monitor_server.ingest import SampleWriter
from monitor_server.presence import Presence
from monitor_server.releases import ReleaseService
from monitor_server.retention import run_retention
from monitor_server.sessions import SessionRegistry
from monitor_server.settings import Settings
from monitor_server.store import RemovedDevice, Sample, Store, open_store
from monitor_server.store.base import Touch
from monitor_server.throttle import Throttle
from monitor_server.token import ResolvedToken, resolve_token
from protocol.codes import CloseCode
from protocol.errors import NotFound

log = logging.getLogger("monitor_server")


@dataclass
class Hub:
    settings: Settings
    token: ResolvedToken
    store: Store
    bus: EventBus
    sessions: SessionRegistry
    presence: Presence
    commands: CommandService
    writer: SampleWriter
    # Principals, sessions, API keys, device credentials and the audit log (DESIGN §10).
    identity: Identity
    # The other hubs on the same database (DESIGN §13); alone on SQLite.
    cluster: Cluster
    # Failed authentication per client address, shared by every way in.
    throttle: Throttle = field(default_factory=Throttle)
    alerts: AlertService | None = None  # rules, states, notifications (DESIGN §11)
    releases: ReleaseService = field(init=False)  # rollouts and update offers (DESIGN §12)
    # What hellos report of their devices, stored by group commit (one transaction per storm wave).
    touches: GroupCommit[Touch, None] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _writer_task: asyncio.Task[None] | None = None
    _relay: Relay | None = None

    def __post_init__(self) -> None:
        self.releases = ReleaseService(self.store, self.sessions, self.tell_rollout, self.bus.publish)
        self.touches = GroupCommit(self.store.touch_devices)

    def tell_rollout(self, version: str) -> None:
        """Other hubs offer a rollout saved here to the agents they hold (DESIGN §13)."""
        if self.cluster.hub_id is not None:
            self.cluster.tell(Notice(Kind.ROLLOUT, None, {"version": version}))

    @classmethod
    def build(cls, settings: Settings) -> Hub:
        store = open_store(settings.db)
        cluster = open_cluster(settings.db, store, settings.hub_heartbeat, settings.hub_lost_after)
        bus = EventBus(settings.ui_queue_size)
        sessions = SessionRegistry()
        token = resolve_token(settings)
        identity = Identity.build(store, settings, token.value if settings.legacy_token_on else None)
        identity.listeners.add(sessions.on_identity_event)  # a revoked device's socket closes (4001)
        alerts = AlertService(
            store,
            _external_url(settings),
            hub_id=cluster.hub_id,
            publish=bus.publish,
            group_wait=settings.alert_group_wait,
            repeat_interval=settings.alert_repeat_interval,
            tell=cluster.tell if cluster.hub_id is not None else None,  # rules etc. changed here
        )
        presence = Presence(store, bus, settings.http_offline_after, hub_id=cluster.hub_id)
        presence.listeners.append(alerts.on_presence)
        return cls(
            settings=settings,
            token=token,
            store=store,
            bus=bus,
            sessions=sessions,
            presence=presence,
            commands=CommandService(store, bus, sessions),
            writer=SampleWriter(store, settings.batch_max_rows, hub_id=cluster.hub_id),
            identity=identity,
            cluster=cluster,
            throttle=Throttle(
                max(settings.auth_max_failures, settings.login_max_failures),
                settings.auth_failure_window,
                settings.auth_lockout,
            ),
            alerts=alerts,
        )

    def publish_sample(self, sample: Sample) -> None:
        self.publish_samples((sample,))

    def publish_samples(self, samples: Sequence[Sample]) -> None:
        """Samples as they arrive, in order: to the alert rules, and to dashboards (only when someone
        watches, here or elsewhere: other hubs get the newest of each device)."""
        if self._relay is not None:
            for newest in {sample.device_id: sample for sample in samples}.values():
                self._relay.note_sample(newest)
        if self.alerts is not None:
            self.alerts.on_samples(samples)
        if self.bus.subscriber_count:
            for sample in samples:
                self.bus.publish(SampleEvent.of(sample))

    async def start(self) -> None:
        await self.store.open()
        if self.identity.authn.legacy_token is not None:
            log.warning(
                "the legacy fleet token (MONITOR_TOKEN) is accepted with admin rights on every route; "
                "enroll devices and create users and API keys, then set MONITOR_LEGACY_TOKEN=off "
                "(docs/security.md)"
            )
        await self._join_cluster()
        await self.releases.load()
        await self.presence.rebuild(frozenset(await self.cluster.other_hubs()))
        s = self.settings
        self._writer_task = asyncio.get_running_loop().create_task(self.writer.run())
        self._spawn(self.commands.run_delivery_recorder())
        self._spawn(self.presence.run_sweeper(s.presence_check_interval))
        self._spawn(run_idle_sweeper(self.sessions.sockets, s.idle_timeout))
        exclusive = self.cluster.exclusive
        self._spawn(
            run_retention(self.store, s.retention_days, s.retention_check_interval, exclusive=exclusive)
        )
        self._spawn(self.commands.run_expiry_sweeper(s.expiry_check_interval, exclusive))
        if self.alerts is not None:
            await self.alerts.start(exclusive)  # delivery: one hub at a time ("alert_delivery")

    async def _join_cluster(self) -> None:
        """Several hubs: tell the others what happens here and act on what they tell (DESIGN §13)."""
        if self.cluster.hub_id is None:
            return
        relay = self._relay = Relay(self, self.cluster)
        await self.cluster.start(relay.on_notice, relay.on_takeover, relay.on_revived)
        self.bus.tap = relay.on_bus_event
        self.identity.listeners.add(relay.on_identity_event)
        self._spawn(relay.run_samples())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.alerts is not None:
            await self.alerts.stop()
        if self._writer_task is not None:
            self.writer.close()  # let the batch in flight commit: cancelling would lose it
            await self._writer_task
        await self.writer.flush()
        await self.cluster.stop()
        await self.store.close()

    async def remove_device(self, actor: Principal, device_id: str, address: str | None) -> RemovedDevice:
        """Delete the device with its history and credential; close its socket; tell dashboards.

        NotFound for a device the hub does not know. Its socket closes with 4004 and what it still
        sends is dropped; samples already accepted are written first, so that they are deleted too.
        """
        if await self.store.get_device(device_id) is None and not await self.identity.enrollment.credential(
            device_id
        ):
            raise NotFound(f"unknown device {device_id!r}")
        self.presence.forget(device_id)
        if self.alerts is not None:
            self.alerts.forget_device(device_id)
        socket = self.sessions.forget(device_id)
        if socket is not None:
            socket.abort(CloseCode.REMOVED, "device removed")
        await self.writer.flush()  # ahead of the delete on the store's one write lock
        removed = await self.store.delete_device(device_id)
        if removed is None:
            raise NotFound(f"unknown device {device_id!r}")
        self.identity.authn.forget_device(device_id)
        self.bus.publish(DeviceRemoved(device_id))
        await self.identity.audit.record(
            AuditAction.DEVICE_REMOVED, actor, device_id, address, removed.to_json()
        )
        log.info("device %s removed by %s", device_id, actor.name)
        return removed

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work))


def _external_url(settings: Settings) -> str:
    """This hub's address as notifications name it (``externalURL``)."""
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{settings.host}:{settings.port}"
