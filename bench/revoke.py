"""Scenario: revocation -> the device's live socket closed with 4001 (DESIGN §10: within one second).

A real hub process; each try enrolls a device, opens its ``/ws/agent`` socket with the device
credential (hello, welcome), then times ``POST /devices/{id}/revoke`` from the request being sent
to the close frame (code 4001) arriving at the agent's end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.common import TOKEN, HubProcess, Scale, median_of, running_hub, summary_ms

TARGET_MS = 1000.0


async def _connected(hub: HubProcess, device_id: str, credential: str) -> ClientConnection:
    ws = await connect(
        hub.ws_url, additional_headers={"Authorization": f"Bearer {credential}"}, compression=None
    )
    hello = {"type": "hello", "protocol": 1, "device_id": device_id, "agent_version": "bench"}
    await ws.send(orjson.dumps(hello).decode())
    welcome = orjson.loads(await ws.recv())
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"{device_id}: expected welcome, got {welcome}")
    return ws


async def _one_run(folder: Path, tries: int) -> list[float]:
    """Seconds from sending each revoke to its socket's close frame."""
    took: list[float] = []
    async with (
        running_hub(folder) as hub,
        httpx.AsyncClient(base_url=hub.http_url, headers={"X-Auth-Token": TOKEN}, timeout=30) as api,
    ):
        made = await api.post("/enrollment-tokens", json={"expires_in": 3600, "max_uses": tries})
        made.raise_for_status()
        token = made.json()["token"]
        for n in range(tries):
            device = f"revoke-{n:04d}"
            enrolled = await api.post("/enroll", json={"token": token, "device_id": device})
            enrolled.raise_for_status()
            ws = await _connected(hub, device, enrolled.json()["credential"])
            closed = asyncio.get_running_loop().create_task(ws.wait_closed())
            started = time.perf_counter()
            (await api.post(f"/devices/{device}/revoke")).raise_for_status()
            async with asyncio.timeout(10):
                await closed
            took.append(time.perf_counter() - started)
            if ws.close_code != 4001:
                raise RuntimeError(f"{device}: closed with {ws.close_code}, not 4001")
    return took


async def run(folder: Path, scale: Scale) -> dict[str, Any]:
    tries = scale.pick(5, 100)
    runs = [summary_ms(await _one_run(folder / f"run{n}", tries)) for n in range(scale.runs)]
    p99 = median_of(runs, "p99_ms")
    return {
        "scenario": "revoke",
        "what": "POST /devices/{id}/revoke sent -> close 4001 received on the device's live socket",
        "tries_per_run": tries,
        "runs": runs,
        "revoke_to_close": {k: median_of(runs, k) for k in ("p50_ms", "p99_ms", "max_ms")},
        "targets": {
            "revocation closes the live socket, p99 (ms)": {
                "target": f"<= {TARGET_MS:g}",
                "achieved": p99,
                "met": p99 <= TARGET_MS,
            }
        },
    }
