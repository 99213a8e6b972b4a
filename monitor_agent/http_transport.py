"""The seed's REST contract as a transport: POST /ingest, poll /commands/next, POST the ack.

For networks where a proxy blocks WebSockets. Uses the standard library's HTTP client in a
worker thread: a poll every few seconds does not justify another dependency.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from monitor_agent.backoff import Backoff
from monitor_agent.config import public_url
from monitor_agent.credential import Credentials
from monitor_agent.errors import TokenRejected
from monitor_agent.ports import AgentPorts
from monitor_agent.result import CommandResult
from monitor_agent.update.state import mark_welcome
from protocol.plain import decode_json, encode_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpSettings:
    base_url: str
    token: str
    # Further hubs' REST base URLs: after a failed cycle the next one is tried, in turn.
    failover_urls: tuple[str, ...] = ()
    poll_interval: float = 5.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_retry_delay: float = 60.0
    timeout: float = 10.0
    max_commands_per_poll: int = 100
    # The device credential kept in the state folder (DESIGN §10); None: the legacy ``token``.
    credentials: Credentials | None = None


class HttpStatusError(OSError):
    """The hub answered with an unexpected HTTP status."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status


class HttpTransport:
    """Polls the hub over REST; every call is one short request."""

    def __init__(self, settings: HttpSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, rng or random.Random())
        self.connected = asyncio.Event()
        self.last_failure = ""
        self.credentials = settings.credentials or Credentials(settings.token)
        self.urls = (settings.base_url, *settings.failover_urls)
        self._turn = 0  # index in ``urls`` of the hub in use
        self._device = ""
        self._name = ""

    @property
    def base_url(self) -> str:
        """The hub in use: the same one while its requests succeed."""
        return self.urls[self._turn]

    async def run(self, ports: AgentPorts) -> None:
        self._name = ports.identity.device_id
        self._device = quote(self._name, safe="")
        while not ports.stop.stopping.is_set():
            try:
                await self._cycle(ports)
            except TokenRejected as exc:
                if self.credentials.refused():
                    log.info(
                        "%s: the hub refused the newest credential (%s); trying the previous one",
                        self._name,
                        exc,
                    )
                    continue
                repeated = self.last_failure == str(exc)
                self._lost(str(exc))
                delay = self.settings.auth_retry_delay * self.backoff.rng.uniform(0.8, 1.2)
                log.log(
                    logging.DEBUG if repeated else logging.ERROR,
                    "%s: %s at %s: %s; retrying in %.0fs",
                    self._name,
                    exc,
                    public_url(self.base_url),
                    _refusal_hint(self.credentials),
                    delay,
                )
                await ports.wait_stopping(delay)
                continue
            except (OSError, ValueError) as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                delay = self.backoff.next_delay()
                failed = self.base_url
                self._turn = (self._turn + 1) % len(self.urls)  # round robin over the hubs
                log.warning(
                    "%s: hub %s unreachable (%s); retrying%s in %.1fs",
                    self._name,
                    public_url(failed),
                    self.last_failure,
                    f" at {public_url(self.base_url)}" if len(self.urls) > 1 else "",
                    delay,
                )
                await ports.wait_stopping(delay)
                continue
            if not self.connected.is_set():
                log.info("%s: using hub %s", self._name, public_url(self.base_url))
                self._answered(ports)
            self.backoff.reset()
            self.credentials.accepted()
            self.last_failure = ""
            self.connected.set()
            await self._wait_for_work(ports)
        await self._flush(ports)

    def _answered(self, ports: AgentPorts) -> None:
        """A whole exchange with the hub went through: this transport's ``welcome``.

        Under the update launcher that ends a new version's probation (``update/welcome-<version>``,
        as the WebSocket transport writes it after ``welcome``); nothing is written otherwise.
        Updates are offered over the WebSocket only, but one staged by hand is installed by the
        launcher whatever the transport, and must not be rolled back for want of a ``welcome``.
        """
        store = self.credentials.store
        if store is not None:
            mark_welcome(store.path.parent, ports.identity.agent_version)

    def _lost(self, why: str) -> None:
        self.last_failure = why
        self.connected.clear()

    async def _wait_for_work(self, ports: AgentPorts) -> None:
        """Until the next poll is due, a sample or an ack is ready, or the agent stops."""
        events = (ports.samples.ready, ports.acks.ready, ports.stop.stopping)
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(
                waiters, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _flush(self, ports: AgentPorts) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._send_acks(ports)
                await self._send_spool(ports)
        except (TimeoutError, OSError, ValueError, TokenRejected) as exc:
            log.info("%s: flush incomplete (%r); the rest is kept on disk", self._name, exc)

    async def _cycle(self, ports: AgentPorts) -> None:
        # Cleared before looking, so whatever arrives during the cycle wakes the next one.
        ports.samples.ready.clear()
        ports.acks.ready.clear()
        await self._send_acks(ports)
        await self._send_spool(ports)
        for _ in range(self.settings.max_commands_per_poll):
            command = await self._request("GET", f"/devices/{self._device}/commands/next")
            if not isinstance(command, dict) or ports.stop.stopping.is_set():
                break
            ports.commands.submit(int(command["id"]), str(command["command"]), command.get("args"))
            await ports.commands.join()
            await self._send_acks(ports)  # raises if one does not go through: retried next cycle

    async def _send_spool(self, ports: AgentPorts) -> None:
        # A 2xx from /ingest means the sample is stored; only then is it forgotten.
        while rows := ports.samples.peek(50):
            for key, sample in rows:
                body = {**sample, "device_id": self._name}
                try:
                    await self._request("POST", "/ingest", body)
                except HttpStatusError as exc:
                    if exc.status != 422:
                        raise
                    log.error("%s: hub rejected a sample, dropping it: %s", self._name, exc)
                ports.samples.remove([key])

    async def _send_acks(self, ports: AgentPorts) -> None:
        for command_id, result in ports.acks.unconfirmed():
            await self._ack(command_id, result)
            ports.acks.confirm(command_id)

    async def _ack(self, command_id: int, result: CommandResult) -> None:
        # The REST ack body (protocol.rest.CommandAckBody): extra result fields ride along.
        body = {**result.extra, "success": result.success, "message": result.message}
        try:
            await self._request("POST", f"/devices/{self._device}/commands/{command_id}/ack", body)
        except HttpStatusError as exc:
            if exc.status != 404:
                raise
            log.warning("%s: hub no longer knows command %d; forgetting its ack", self._name, command_id)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._request_sync, method, path, body)

    def _request_sync(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else encode_json(body)
        request = urllib.request.Request(  # noqa: S310 - the URL scheme was validated as http(s)
            self.base_url + path,
            data=data,
            method=method,
            headers={**self.credentials.headers(), "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise TokenRejected(exc.code) from None
            raise HttpStatusError(exc.code, exc.read()) from None
        return decode_json(payload) if payload else None


def _refusal_hint(credentials: Credentials) -> str:
    if credentials.device_credential:
        return (
            "the hub refuses this device's credential (revoked, or reset for a new enrollment); an admin "
            "must reset the device, then enroll it again (monitor-agent enroll)"
        )
    return "the agent token is wrong or missing (check --token / MONITOR_AGENT_TOKEN)"
