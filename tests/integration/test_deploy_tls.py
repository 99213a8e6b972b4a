"""TLS end to end: the hub serves HTTPS/WSS from a cert and key; agents verify it by CA file or pin."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from monitor_agent.config import load_config
from monitor_agent.connection import LinkState
from monitor_agent.daemon import build_transport
from monitor_agent.tls import fingerprint
from tests.agentd import LocalAgent, command, device, enqueue, eventually, start_local_agent
from tests.conftest import HubFactory
from tests.hubs import RunningHub
from tests.timing import t


@dataclass
class TlsHub:
    hub: RunningHub
    ca: trustme.CA
    ca_file: Path
    leaf_der: bytes

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.hub.port}"

    def client_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
async def tls_hub(hub_factory: HubFactory, tmp_path: Path) -> TlsHub:
    """A hub serving HTTPS/WSS with a certificate for 127.0.0.1 from a CA made for this test."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "hub.crt", tmp_path / "hub.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    hub = await hub_factory(tls_cert=cert, tls_key=key)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return TlsHub(hub, ca, ca_file, der)


@pytest.fixture
async def tls_api(tls_hub: TlsHub) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS API client that trusts only the test CA."""
    async with httpx.AsyncClient(
        base_url=tls_hub.https_url, verify=tls_hub.client_ssl(), headers={"X-Auth-Token": tls_hub.hub.token}
    ) as client:
        yield client


def tls_agent(tls_hub: TlsHub, state: Path, device_id: str, **config: Any) -> LocalAgent:
    """A real agent built from its configuration, as `monitor-agent --server https://...` builds it."""
    flags = {
        "server": tls_hub.https_url,
        "token": tls_hub.hub.token,
        "backoff_base": 0.05,
        "backoff_cap": 0.3,
        "connect_timeout": t(5),
        **config,
    }
    transport = build_transport(load_config(flags, environ={}))
    state.mkdir(parents=True, exist_ok=True)
    return start_local_agent(state, transport, device_id=device_id)


async def round_trip(api: httpx.AsyncClient, device_id: str) -> None:
    """Enqueue echo over HTTPS and wait for the agent's ack to be stored."""
    cid = await enqueue(api, device_id, "echo", {"over": "wss"})

    async def acked() -> dict[str, Any] | None:
        found = await command(api, device_id, cid)
        return found if found["status"] == "acked" else None

    done = await eventually(acked, what="echo acknowledged over WSS")
    assert done["success"] is True and done["result"]["args"] == {"over": "wss"}


async def test_hub_serves_https_and_not_plain_http(tls_hub: TlsHub, tls_api: httpx.AsyncClient) -> None:
    """With MONITOR_TLS_CERT/KEY the port speaks HTTPS only: /health verifies against the CA."""
    health = await tls_api.get("/health")
    assert health.status_code == 200 and health.json()["ok"] is True
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.TransportError):
            await plain.get(f"http://127.0.0.1:{tls_hub.hub.port}/health", timeout=t(5))


async def test_agent_round_trips_a_command_over_wss(
    tls_hub: TlsHub, tls_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """An agent trusting the CA file connects over wss:// and executes a command pushed to it."""
    local = tls_agent(tls_hub, tmp_path / "agent", "tls-agent", ca_file=str(tls_hub.ca_file))
    try:
        await eventually(lambda: _online(tls_api, "tls-agent"), what="agent online over WSS")
        assert local.transport.settings.url.startswith("wss://")
        await round_trip(tls_api, "tls-agent")
    finally:
        await local.stop()


async def test_agent_pinned_to_the_hub_certificate_connects(
    tls_hub: TlsHub, tls_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A pin equal to the hub certificate's SHA-256 fingerprint (openssl's format) is accepted."""
    pin = fingerprint(tls_hub.leaf_der)
    local = tls_agent(tls_hub, tmp_path / "agent", "pinned", ca_file=str(tls_hub.ca_file), pin_sha256=pin)
    try:
        await eventually(lambda: _online(tls_api, "pinned"), what="pinned agent online")
        await round_trip(tls_api, "pinned")
    finally:
        await local.stop()


@pytest.mark.parametrize("mistake", ["wrong CA", "wrong pin"])
async def test_untrusted_hub_is_refused_with_one_clear_error_then_a_slow_retry(
    mistake: str,
    tls_hub: TlsHub,
    tls_api: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CA that did not sign the hub, or a foreign pin: no session, one ERROR naming why, retry slowly."""
    caplog.set_level(logging.DEBUG, logger="monitor_agent")
    if mistake == "wrong CA":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        config: dict[str, Any] = {"ca_file": str(other)}
        expected = ["certificate verify failed", str(other), "--ca-file"]
    else:
        config = {"ca_file": str(tls_hub.ca_file), "pin_sha256": "ab" * 32}
        expected = [fingerprint(tls_hub.leaf_der), "--pin-sha256"]
    local = tls_agent(tls_hub, tmp_path / "agent", "untrusting", auth_retry_delay=30, **config)
    try:
        await eventually(lambda: _failed(local), what="the TLS failure")
        transport = local.transport
        assert transport.state is not LinkState.CONNECTED and transport.attempts == 1
        # backoff_base is 0.05 s: only the slow path waits this long before trying again.
        assert transport.last_delay >= 30 * 0.8
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "TLS verification of wss://127.0.0.1" in errors[0]
        for text in expected:
            assert text in errors[0], (text, errors[0])
        assert await device(tls_api, "untrusting") is None
    finally:
        await local.stop()


async def _online(api: httpx.AsyncClient, device_id: str) -> bool:
    entry = await device(api, device_id)
    return entry is not None and entry["online"] is True


async def _failed(local: LocalAgent) -> bool:
    return "TLS verification" in local.transport.last_failure


async def test_agent_process_with_ca_file_and_pin_flags_connects_over_wss(
    tls_hub: TlsHub, tls_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """`monitor-agent --server https://... --ca-file ... --pin-sha256 ...` as an operator types it."""
    state = tmp_path / "agent"
    state.mkdir()
    argv = [
        sys.executable,
        "-m",
        "monitor_agent",
        "--server",
        tls_hub.https_url,
        "--ca-file",
        str(tls_hub.ca_file),
        "--pin-sha256",
        fingerprint(tls_hub.leaf_der),
        "--device-id",
        "tls-process",
        "--state-dir",
        str(state),
    ]
    env = {**os.environ, "MONITOR_AGENT_TOKEN": tls_hub.hub.token}
    with (state / "agent.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        await eventually(lambda: _online(tls_api, "tls-process"), what="agent process online over WSS")
        await round_trip(tls_api, "tls-process")
    finally:
        proc.terminate()
        # Waited in a thread: the agent's goodbye needs this loop's hub to answer.
        status = await asyncio.to_thread(proc.wait, t(10))
        assert status == 0, (state / "agent.log").read_text()
