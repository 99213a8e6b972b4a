"""The WebSocket transport: an I/O loop around ``protocol.agent_session.AgentSession``.

The session owns the rules (hello, welcome, ``seq`` numbers, which samples ``stored`` covers,
which frames are unreadable); this module moves frames and acts on the session's events.
A spooled sample is deleted only when the hub's ``stored`` frame covers it (or an ``error``
frame refuses it for good): a pong or a written socket proves nothing about the commit.

One ``WsTransport`` per agent, one ``AgentSession`` per connection; it holds no
process-global state, so a simulator can run thousands side by side in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from monitor_agent.backoff import Backoff
from monitor_agent.config import public_url
from monitor_agent.credential import Credentials
from monitor_agent.errors import (
    CredentialRevoked,
    DuplicateDevice,
    HandshakeFailed,
    HubUnreadable,
    TokenRejected,
)
from monitor_agent.ports import AgentPorts
from monitor_agent.tls import describe_failure
from monitor_agent.update import receive
from monitor_agent.update.state import mark_welcome
from protocol.agent_session import (
    AckConfirmed,
    AgentEvent,
    AgentSession,
    CommandReceived,
    CredentialReceived,
    GiveUp,
    HandshakeRefused,
    Refused,
    SamplesDone,
    UpdateOffered,
    Welcomed,
)
from protocol.codes import Capability, CloseCode, ErrorCode
from protocol.errors import IllegalTransition, ProtocolError
from protocol.frames import PROTOCOL_VERSION, Hello, UpdateFrame, Welcome
from protocol.plain import parse_object

log = logging.getLogger(__name__)

# Frames are read up to this many times the frame limit (and at most this much over it), so a
# command too big for the agent is refused alone, acked as failed, instead of websockets closing
# the socket with 1009 over it again after every reconnect.
OVERSIZE_FACTOR = 4
OVERSIZE_SLACK = 16 << 20


def read_limit(max_frame_bytes: int) -> int:
    """The largest frame the socket reads: those over ``max_frame_bytes`` are read only to refuse them."""
    return min(max_frame_bytes * OVERSIZE_FACTOR, max_frame_bytes + OVERSIZE_SLACK)


class LinkState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


_MOVES = {
    LinkState.DISCONNECTED: {LinkState.CONNECTING, LinkState.CLOSED},
    LinkState.CONNECTING: {LinkState.CONNECTED, LinkState.DISCONNECTED, LinkState.CLOSED},
    LinkState.CONNECTED: {LinkState.DISCONNECTED, LinkState.CLOSED},
    LinkState.CLOSED: set(),
}


def move(current: LinkState, target: LinkState) -> LinkState:
    """Return ``target`` if the link may go there from ``current``, else raise."""
    if target not in _MOVES[current]:
        raise IllegalTransition(f"link cannot go from {current} to {target}")
    return target


@dataclass(frozen=True)
class WsSettings:
    url: str
    token: str
    # Further hubs (``/ws/agent`` URLs): each attempt after a failed or ended one goes to the
    # next URL in turn, ``url`` first (round robin), with the usual backoff in between.
    failover_urls: tuple[str, ...] = ()
    batch_size: int = 500
    window: int = 4  # batches sent and not yet stored, at most
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_retry_delay: float = 60.0
    connect_timeout: float = 10.0
    flush_timeout: float = 2.0
    max_frame_bytes: int = 1 << 20
    ssl_context: ssl.SSLContext | None = None  # for wss://; None uses websockets' default
    ca_file: Path | None = None  # only named in TLS error messages
    # The device credential kept in the state folder (DESIGN §10); None: the legacy ``token``.
    credentials: Credentials | None = None
    # Over-the-air updates (DESIGN §12): set under the launcher (found from the environment when
    # None and a credential store names the state folder).
    updates: receive.Updates | None = None


class WsTransport:
    """Keeps one agent connected to ``/ws/agent``."""

    def __init__(self, settings: WsSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.state = LinkState.DISCONNECTED
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng or random.Random())
        self.rng = self.backoff.rng
        self.attempts = 0
        self.connections = 0
        self.heartbeats_sent = 0
        self.last_delay = 0.0
        self.last_failure = ""
        self.connected = asyncio.Event()
        self.credentials = settings.credentials or Credentials(settings.token)
        self.urls = (settings.url, *settings.failover_urls)
        self._turn = 0  # index in ``urls`` of the next attempt

    @property
    def url(self) -> str:
        """The hub of the current (or next) attempt."""
        return self.urls[self._turn]

    def _then(self) -> str:
        """ " to <next hub>" for a log line when there are several hubs, else ""."""
        if len(self.urls) == 1:
            return ""
        return f" to {public_url(self.urls[(self._turn + 1) % len(self.urls)])}"

    def _rotate(self) -> None:
        """The attempt is over (failed, refused or ended): the next one goes to the next hub."""
        self._turn = (self._turn + 1) % len(self.urls)

    def _set(self, target: LinkState) -> None:
        self.state = move(self.state, target)
        if target is LinkState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    async def run(self, ports: AgentPorts) -> None:
        """Connect, serve, and reconnect with backoff until the agent stops."""
        try:
            while not ports.stop.stopping.is_set():
                delay = await self._attempt(ports)
                if delay is not None:
                    await ports.wait_stopping(delay)
        finally:
            if self.state is not LinkState.CLOSED:
                self._set(LinkState.CLOSED)

    async def _attempt(self, ports: AgentPorts) -> float | None:
        """One connection; returns how long to wait before the next one (None: stopping)."""
        self._set(LinkState.CONNECTING)
        self.attempts += 1
        name = ports.identity.device_id
        try:
            await self._session(ports)
        except (TokenRejected, CredentialRevoked) as exc:
            if self.credentials.device_credential:
                return self._fail(self._credential_refused(name, exc))
            self.last_failure = str(exc)
            delay = self.settings.auth_retry_delay * self.rng.uniform(0.8, 1.2)
            log.error(
                "%s: %s at %s: the agent token is wrong or missing (check --token / "
                "MONITOR_AGENT_TOKEN); retrying%s in %.0fs",
                name,
                exc,
                public_url(self.url),
                self._then(),
                delay,
            )
            return self._fail(delay)
        except ssl.SSLCertVerificationError as exc:
            return self._fail(self._tls_refused(name, exc))
        except DuplicateDevice as exc:
            self.last_failure = str(exc)
            delay = exc.retry_after * self.rng.uniform(0.8, 1.2)
            log.error("%s: %s; retrying%s in %.0fs", name, exc, self._then(), delay)
            return self._fail(delay)
        except (
            OSError,
            TimeoutError,
            InvalidHandshake,
            ConnectionClosed,
            HandshakeFailed,
            HubUnreadable,
        ) as exc:
            self.last_failure = f"{type(exc).__name__}: {exc}"
            delay = self.backoff.next_delay()
            log.warning(
                "%s: connection to %s failed or lost (%s); reconnecting%s in %.1fs",
                name,
                public_url(self.url),
                self.last_failure,
                self._then(),
                delay,
            )
            return self._fail(delay)
        if self.state is not LinkState.CLOSED:
            self._set(LinkState.DISCONNECTED)
        if ports.stop.stopping.is_set():
            return None
        self._rotate()
        self.last_delay = self.backoff.next_delay()
        return self.last_delay

    def _credential_refused(self, name: str, exc: TokenRejected | CredentialRevoked) -> float:
        """The hub refused (or revoked) this device's credential: try the previous one at once,
        else say so once (repeats go to DEBUG) and retry slowly: only an admin can fix it."""
        if isinstance(exc, TokenRejected) and self.credentials.refused():
            log.info("%s: the hub refused the newest credential (%s); trying the previous one", name, exc)
            return 0.0
        reason = "the hub refuses this device's credential (revoked, or reset for a new enrollment)"
        delay = self.settings.auth_retry_delay * self.rng.uniform(0.8, 1.2)
        level = logging.DEBUG if reason == self.last_failure else logging.ERROR
        log.log(
            level,
            "%s: %s: %s at %s; an admin must reset the device, then enroll it again "
            "(monitor-agent enroll); retrying%s in %.0fs",
            name,
            reason,
            exc,
            public_url(self.url),
            self._then(),
            delay,
        )
        self.last_failure = reason
        return delay

    def _tls_refused(self, name: str, exc: ssl.SSLCertVerificationError) -> float:
        """A hub we cannot trust: say why once, then retry slowly (only an operator can fix it)."""
        reason = describe_failure(exc, public_url(self.url), self.settings.ca_file)
        delay = self.settings.auth_retry_delay * self.rng.uniform(0.8, 1.2)
        level = logging.DEBUG if reason == self.last_failure else logging.ERROR
        log.log(level, "%s: %s; retrying%s in %.0fs", name, reason, self._then(), delay)
        self.last_failure = reason
        return delay

    def _tls_options(self) -> dict[str, Any]:
        # websockets refuses ssl=None for wss:// and any ssl for ws://: pass it only when set.
        context = self.settings.ssl_context
        return {"ssl": context} if context is not None else {}

    def _fail(self, delay: float) -> float:
        self._set(LinkState.DISCONNECTED)
        self._rotate()
        self.last_delay = delay
        return delay

    async def _session(self, ports: AgentPorts) -> None:
        headers = self.credentials.headers()
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.settings.connect_timeout,
                ping_interval=None,  # started after welcome, with the hub's timings
                close_timeout=self.settings.flush_timeout,
                compression=None,
                max_size=read_limit(self.settings.max_frame_bytes),
                user_agent_header=f"monitor-agent/{ports.identity.agent_version}",
                **self._tls_options(),
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise TokenRejected(status) from None
            raise
        updates = self.settings.updates
        if updates is None and self.credentials.store is not None:
            state_dir = self.credentials.store.path.parent
            updates = receive.Updates.from_launcher(state_dir, ports.identity.agent_version)
        link = _Connection(ws, ports, self.settings, self._count_heartbeat, self.credentials, updates)
        link.hub_url = self.url
        try:
            welcome = await link.handshake()
            self.credentials.accepted()
            if self.credentials.store is not None:  # ends the update launcher's probation, if any
                mark_welcome(self.credentials.store.path.parent, ports.identity.agent_version)
            elif updates is not None:
                mark_welcome(updates.state_dir, ports.identity.agent_version)
            self.last_failure = ""
            self._set(LinkState.CONNECTED)
            self.connections += 1
            self.backoff.reset()
            log.info(
                "%s: connected to hub %s (ping every %gs, timeout %gs)",
                ports.identity.device_id,
                public_url(self.url),
                welcome.ping_interval,
                welcome.ping_timeout,
            )
            try:
                await link.serve(welcome)
            except ConnectionClosed:
                if ws.close_code == CloseCode.REVOKED:  # a send noticed the close first
                    raise CredentialRevoked(
                        f"the hub closed the connection with {CloseCode.REVOKED}"
                    ) from None
                raise
            if ports.stop.stopping.is_set():
                self._set(LinkState.CLOSED)
            elif ws.close_code == CloseCode.REVOKED:
                raise CredentialRevoked(f"the hub closed the connection with {CloseCode.REVOKED}")
            else:
                log.warning(
                    "%s: hub closed the connection (code %s %s)",
                    ports.identity.device_id,
                    ws.close_code,
                    ws.close_reason or "",
                )
        finally:
            await ws.close(link.close_code, link.close_reason)

    def _count_heartbeat(self) -> None:
        self.heartbeats_sent += 1

    async def wait_connected(self) -> None:
        await self.connected.wait()


class _Finished(Exception):
    """One loop of a connection returned: the others are stopped."""


async def _until_first_ends(*loops: Awaitable[object]) -> None:
    """Run ``loops`` together until one returns or raises; the others are cancelled and awaited.

    An exception is re-raised as itself, not inside an ExceptionGroup.
    """

    async def run(loop: Awaitable[object]) -> None:
        await loop
        raise _Finished

    try:
        async with asyncio.TaskGroup() as group:
            for loop in loops:
                group.create_task(run(loop))
    except BaseExceptionGroup as exc:
        errors = [e for e in exc.exceptions if not isinstance(e, _Finished)]
        if errors:
            raise errors[0] from None


class _Connection:
    """One socket to the hub: its AgentSession, the one sender of its frames, and its loops."""

    def __init__(
        self,
        ws: ClientConnection,
        ports: AgentPorts,
        settings: WsSettings,
        on_heartbeat: Callable[[], None],
        credentials: Credentials | None = None,
        updates: receive.Updates | None = None,
    ) -> None:
        self.ws = ws
        self.credentials = credentials
        self.updates = updates
        self.hub_url = settings.url
        self._update_task: asyncio.Task[None] | None = None
        self.ports = ports
        self.settings = settings
        ident = ports.identity
        hello = Hello(
            protocol=PROTOCOL_VERSION,
            device_id=ident.device_id,
            agent_version=ident.agent_version,
            hostname=ident.hostname,
            platform=ident.platform,
            capabilities=[*ports.capabilities, *([Capability.UPDATES.value] if updates else [])],
            instance_id=ident.instance_id,
            tags=list(ident.tags),
        )
        self.session = AgentSession[int](hello)
        self.close_code = CloseCode.NORMAL
        self.close_reason = ""
        self._on_heartbeat = on_heartbeat
        self._name = ident.device_id
        self._limit = settings.max_frame_bytes
        self._window = settings.window * settings.batch_size  # samples in flight, at most
        self._last_sent = time.monotonic()
        self._acks_sent: set[int] = set()  # on this connection, awaiting ``acked``
        self._progress = asyncio.Event()  # set by each ``stored`` / ``acked``: the window moved

    async def handshake(self) -> Welcome:
        await self._send(self.session.hello())
        async with asyncio.timeout(self.settings.connect_timeout):
            raw = await self.ws.recv()
        for event in self.session.receive(raw):
            if isinstance(event, HandshakeRefused):
                if event.code == ErrorCode.DUPLICATE_DEVICE and event.retry_after:
                    raise DuplicateDevice(event.reason, event.retry_after)
                if event.code == ErrorCode.FORBIDDEN:  # the credential is another device's: retry slowly
                    raise TokenRejected(403, event.reason)
                raise HandshakeFailed(event.reason)
            if isinstance(event, Welcomed):
                welcome = event.welcome
                self._limit = min(self.settings.max_frame_bytes, welcome.max_frame_bytes)
                # The hub pings us too; our own pings notice a hub that went silent.
                if welcome.ping_interval > 0:
                    self.ws.ping_interval = welcome.ping_interval
                    self.ws.ping_timeout = welcome.ping_timeout
                    self.ws.start_keepalive()
                return welcome
        raise HandshakeFailed("the hub did not answer hello")

    async def serve(self, welcome: Welcome) -> None:
        """Until the hub closes, the link fails (raises), or the agent stops (then flush)."""
        stop = self.ports.stop
        try:
            await _until_first_ends(
                self._receive(),
                self._drain(),
                self._send_acks(),
                self._heartbeat(welcome.heartbeat_interval),
                self._report_update_results(),
                stop.stopping.wait(),
            )
        finally:
            if self._update_task is not None:
                self._update_task.cancel()
        if stop.stopping.is_set():
            await self._flush()
            self.close_code = CloseCode.SERVICE_RESTART if stop.restarting else CloseCode.NORMAL
            self.close_reason = "agent restart" if stop.restarting else "agent stopped"

    # Frames in

    async def _receive(self) -> None:
        async for raw in self.ws:
            size = _oversize(raw, self._limit)
            command_id = _command_id(raw) if size else None
            if command_id is not None:
                message = f"its frame is {size} bytes, over this agent's frame limit of {self._limit} bytes"
                await self._refuse_command(command_id, message, error="frame_too_large", frame_bytes=size)
                continue
            events = self.session.receive(raw)
            refused = next((e for e in events if isinstance(e, Refused)), None)
            if refused is not None and (command_id := _command_id(raw)) is not None:
                await self._refuse_command(command_id, f"its frame is invalid: {refused.message}")
            for event in events:
                if isinstance(event, CredentialReceived):
                    await self._save_credential(event.credential)
                elif isinstance(event, UpdateOffered):
                    self._take_update(event.update)
                else:
                    self._act(event)

    # Updates (DESIGN §12): the download and the checks run beside the loops, never in them

    def _take_update(self, offer: UpdateFrame) -> None:
        if self._update_task is not None and not self._update_task.done():
            log.warning("%s: update to %s offered while another is being fetched", self._name, offer.version)
            return
        self._update_task = asyncio.get_running_loop().create_task(self._update(offer))

    async def _update(self, offer: UpdateFrame) -> None:
        updates = self.updates
        if updates is None:
            reason = receive.failed("no_key: this agent does not run under the launcher")
            await self._report(offer.version, "failed", reason)
            return
        try:
            receive.precheck(updates, offer.version, offer.allow_downgrade)
            url = receive.bundle_url(self.hub_url, offer.url)
            await asyncio.sleep(random.uniform(0, offer.jitter))  # spreads a fleet's downloads
            await self._report(offer.version, "downloading", "")
            headers = self.credentials.headers() if self.credentials is not None else {}
            staged = await asyncio.to_thread(
                receive.fetch_and_stage, updates, url, headers, self.settings.ssl_context, offer
            )
        except (ValueError, OSError) as exc:  # ReleaseRefused is a ValueError
            reason = receive.describe(exc)
            log.error("%s: update to %s refused: %s", self._name, offer.version, reason)
            await self._report(offer.version, "failed", reason)
            return
        log.info("%s: update to %s verified and staged: the launcher installs it", self._name, staged)

    async def _report(self, version: str, state: str, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._send(self.session.update_status(version, state, reason))

    async def _report_update_results(self) -> None:
        """Tell the hub, once, how the launcher's last update ended (it writes that after our welcome)."""
        if self.updates is None:
            await asyncio.Event().wait()  # nothing to watch; ends with the other loops
        while self.updates is not None:
            if (found := receive.unreported_result(self.updates)) is not None:
                await self._send(self.session.update_status(*found))
                receive.mark_reported(self.updates)
            await asyncio.sleep(receive.RESULT_POLL)

    async def _save_credential(self, secret: str) -> None:
        """Rotation: store the new credential durably, and only then tell the hub.

        Not saved (no credential kept, a disk error): no answer, so the hub keeps the old
        credential working.
        """
        if self.credentials is None or not self.credentials.device_credential:
            log.error("%s: the hub sent a new credential, but this agent uses the legacy token", self._name)
            return
        try:
            await asyncio.to_thread(self.credentials.save, secret)
        except OSError as exc:
            log.error(
                "%s: could not store the new credential (%s); the old one stays in use", self._name, exc
            )
            return
        log.info("%s: new credential stored (rotation); telling the hub", self._name)
        await self._send(self.session.credential_saved())

    async def _refuse_command(self, command_id: int, reason: str, **extra: Any) -> None:
        """Ack as failed a command whose frame this agent cannot take; it is never run.

        Not journaled: there is no effect to remember. If this ack is lost the hub sends the
        command again and gets the same answer; ``acked`` confirms it like any other ack.
        """
        message = f"command {command_id} not run: {reason}"
        log.error("%s: %s", self._name, message)
        self._acks_sent.add(command_id)
        extra.setdefault("error", "invalid_frame")
        await self._send(self.session.ack(command_id, False, message, extra))

    def _act(self, event: AgentEvent[int]) -> None:
        match event:
            case CommandReceived(command):
                self.ports.commands.submit(command.id, command.command, command.args)
            case SamplesDone(keys, refused):
                self.ports.samples.remove(keys)
                if refused:
                    log.error("%s: hub refused %d spooled sample(s) for good", self._name, len(keys))
                self._progress.set()
            case AckConfirmed(command_id):
                self.ports.acks.confirm(command_id)
                self._acks_sent.discard(command_id)
                self._progress.set()
            case Refused(code, message):
                log.warning("%s: hub refused a frame: %s: %s", self._name, code, message)
            case GiveUp(code, reason):
                self.close_code, self.close_reason = code, reason
                raise HubUnreadable(reason)
            case _:  # Welcomed, HandshakeRefused: the session only emits them before welcome
                pass

    # Frames out

    async def _send(self, text: str) -> None:
        await self.ws.send(text)
        self._last_sent = time.monotonic()

    async def _drain(self) -> None:
        """Send spooled samples, oldest first, keeping at most ``window`` batches unstored."""
        ready = self.ports.samples.ready
        while True:
            ready.clear()
            self._progress.clear()
            if self.session.in_flight_count() >= self._window:
                await self._progress.wait()
            elif not await self._send_samples():
                await ready.wait()

    async def _send_samples(self) -> bool:
        """Send one frame of the oldest samples not in flight; False when there were none."""
        room = min(self.settings.batch_size, self._window - self.session.in_flight_count())
        rows = self.ports.samples.peek(room, self.session.in_flight())
        if not rows:
            return False
        out = self.session.samples_frame(rows, self._limit)
        if out.dropped:  # invalid, or too big for any frame: the hub would never take them
            self.ports.samples.remove(out.dropped)
        if out.text is not None:
            await self._send(out.text)
        return True

    async def _send_acks(self) -> None:
        ready = self.ports.acks.ready
        while True:
            ready.clear()
            await self._send_new_acks()
            await ready.wait()

    async def _send_new_acks(self) -> None:
        """Send every unconfirmed ack not yet sent on this connection (all of them at first)."""
        for command_id, result in self.ports.acks.unconfirmed():
            if command_id not in self._acks_sent:
                self._acks_sent.add(command_id)
                await self._send(self.session.ack(command_id, result.success, result.message, result.extra))

    async def _heartbeat(self, every: float) -> None:
        """The hub expects a frame at least every ``every`` seconds; pings do not count."""
        while True:
            idle = time.monotonic() - self._last_sent
            if idle >= every:
                await self._send(self.session.heartbeat())
                self._on_heartbeat()
                idle = 0.0
            await asyncio.sleep(every - idle)

    # Stopping

    async def _flush(self) -> None:
        """On the way out: send what is spooled and wait briefly for ``stored`` and ``acked``."""
        try:
            async with asyncio.timeout(self.settings.flush_timeout):
                await _until_first_ends(self._receive(), self._flush_out())
        except (TimeoutError, ConnectionClosed, HubUnreadable) as exc:
            log.info("%s: flush incomplete (%r); the rest is kept on disk", self._name, exc)

    async def _flush_out(self) -> None:
        await self._send_new_acks()
        while True:
            self._progress.clear()
            if self.session.in_flight_count() < self._window and await self._send_samples():
                continue
            if not self.session.in_flight_count() and not self._acks_sent:
                return
            await self._progress.wait()


def _oversize(raw: str | bytes, limit: int) -> int:
    """The frame's size in bytes when it is over ``limit``, else 0."""
    if isinstance(raw, bytes):
        size = len(raw)
    elif len(raw) * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
        return 0
    else:
        size = len(raw.encode())
    return size if size > limit else 0


def _command_id(raw: str | bytes) -> int | None:
    """The ``id`` of a ``command`` frame, if ``raw`` is one that names an integer id."""
    try:
        frame = parse_object(raw)
    except ProtocolError:
        return None
    ident = frame.get("id")
    if frame.get("type") != "command" or not isinstance(ident, int) or isinstance(ident, bool):
        return None
    return ident if -(2**63) <= ident < 2**63 else None
