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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from monitor_agent.backoff import Backoff
from monitor_agent.errors import TokenRejected
from monitor_agent.result import CommandResult

if TYPE_CHECKING:
    from monitor_agent.agent import Agent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpSettings:
    base_url: str
    token: str
    poll_interval: float = 5.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    auth_retry_delay: float = 60.0
    timeout: float = 10.0
    max_commands_per_poll: int = 100


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
        self._device = ""
        self._agent: Agent | None = None

    async def run(self, agent: Agent) -> None:
        self._device = quote(agent.identity.device_id, safe="")
        self._agent = agent
        name = agent.identity.device_id
        while not agent.stopping.is_set():
            try:
                await self._cycle(agent)
            except TokenRejected as exc:
                self._lost(str(exc))
                delay = self.settings.auth_retry_delay * self.backoff.rng.uniform(0.8, 1.2)
                log.error(
                    "%s: %s at %s: the agent token is wrong or missing (check --token / "
                    "MONITOR_AGENT_TOKEN); retrying in %.0fs",
                    name,
                    exc,
                    self.settings.base_url,
                    delay,
                )
                await agent.wait_stopping(delay)
                continue
            except (OSError, ValueError) as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                delay = self.backoff.next_delay()
                log.warning(
                    "%s: hub %s unreachable (%s); retrying in %.1fs",
                    name,
                    self.settings.base_url,
                    self.last_failure,
                    delay,
                )
                await agent.wait_stopping(delay)
                continue
            self.backoff.reset()
            self.connected.set()
            await self._wait_for_work(agent)
        await self._flush(agent)

    def _lost(self, why: str) -> None:
        self.last_failure = why
        self.connected.clear()

    async def _wait_for_work(self, agent: Agent) -> None:
        """Until the next poll is due, a new sample is ready, or the agent stops."""
        agent.sample_ready.clear()
        waiters = [asyncio.ensure_future(e.wait()) for e in (agent.sample_ready, agent.stopping)]
        try:
            await asyncio.wait(
                waiters, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _flush(self, agent: Agent) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._send_spool(agent)
        except (TimeoutError, OSError, TokenRejected) as exc:
            log.info("%s: flush incomplete (%r); the rest is kept on disk", agent.identity.device_id, exc)

    async def _cycle(self, agent: Agent) -> None:
        for command_id, result in agent.unconfirmed_acks():
            await self._ack(agent, command_id, result)
        await self._send_spool(agent)
        for _ in range(self.settings.max_commands_per_poll):
            command = await self._request("GET", f"/devices/{self._device}/commands/next")
            if not isinstance(command, dict) or agent.stopping.is_set():
                break
            await agent.handle_command(int(command["id"]), str(command["command"]), command.get("args"))
            if agent.journal.get(int(command["id"])) is None or agent.unconfirmed_acks():
                break  # the ack did not go through: the next cycle retries it

    async def _send_spool(self, agent: Agent) -> None:
        while rows := agent.spool.peek(50):
            for key, sample in rows:
                body = {**sample, "device_id": agent.identity.device_id}
                try:
                    await self._request("POST", "/ingest", body)
                except HttpStatusError as exc:
                    if exc.status != 422:
                        raise
                    log.error("%s: hub rejected a sample, dropping it: %s", agent.identity.device_id, exc)
                agent.spool.remove([key])

    async def send_ack(self, command_id: int, result: CommandResult) -> bool:
        # Called by the agent right after a command ran; a failure waits for the next cycle.
        if self._agent is None:
            return False
        try:
            await self._ack(self._agent, command_id, result)
        except (OSError, TokenRejected) as exc:
            log.warning(
                "%s: ack of command %d not delivered: %s", self._agent.identity.device_id, command_id, exc
            )
            return False
        return True

    async def _ack(self, agent: Agent, command_id: int, result: CommandResult) -> None:
        # The REST ack body (protocol.rest.CommandAckBody): extra result fields ride along.
        body = {**result.extra, "success": result.success, "message": result.message}
        try:
            await self._request("POST", f"/devices/{self._device}/commands/{command_id}/ack", body)
        except HttpStatusError as exc:
            if exc.status != 404:
                raise
            log.warning(
                "%s: hub no longer knows command %d; forgetting its ack", agent.identity.device_id, command_id
            )
        agent.journal.confirm(command_id)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._request_sync, method, path, body)

    def _request_sync(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(  # noqa: S310 - the URL scheme was validated as http(s)
            self.settings.base_url + path,
            data=data,
            method=method,
            headers={"X-Auth-Token": self.settings.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise TokenRejected(exc.code) from None
            raise HttpStatusError(exc.code, exc.read()) from None
        return orjson.loads(payload) if payload else None
