"""GET /metrics: the Prometheus text format, parsed with the official client library."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.agentd import eventually
from tests.agents import connect_agent, next_frame
from tests.hubs import RunningHub
from tests.timing import t

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(hub: RunningHub, key: str) -> Scrape:
    """Scrape as Prometheus does: a bearer API key."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        answer = await client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


async def viewer_key(api: httpx.AsyncClient) -> str:
    """An API key with the viewer role, owned by a new admin user."""
    made = await api.post("/users", json={"name": "ada", "password": "ada-password", "role": "admin"})
    assert made.status_code == 201, made.text
    key = await api.post("/api-keys", json={"name": "prometheus", "role": "viewer", "owner": "ada"})
    assert key.status_code == 201, key.text
    value: str = key.json()["key"]
    return value


async def test_scrape_shows_hub_and_device_figures(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Samples of two devices and one agent socket show in the scrape with their values."""
    key = await viewer_key(api)
    cpus = {"d1": [10.0, 20.5, 33.25], "d2": [70.0, 5.5]}
    for device, values in cpus.items():
        for cpu in values:
            sent = {"device_id": device, "cpu": cpu, "ram": 40.0, "disk": 61.0, "uptime_sec": 3600}
            assert (await api.post("/ingest", json=sent)).status_code == 200
    ws = await connect_agent(hub, "d3")
    try:
        got = await scrape(hub, key)
    finally:
        await ws.close()
    assert got[("monitor_hub_samples_written_total", ())] >= 5
    assert got[("monitor_hub_agent_sockets", ())] == 1
    assert got[("monitor_hub_samples_refused_total", ())] == 0
    assert got[("monitor_hub_store_failing", ())] == 0
    assert got[("monitor_device_cpu_percent", (("device", "d1"),))] == 33.25
    assert got[("monitor_device_cpu_percent", (("device", "d2"),))] == 5.5
    assert got[("monitor_device_uptime_seconds", (("device", "d1"),))] == 3600
    assert got[("monitor_device_online", (("device", "d3"),))] == 1
    assert got[("monitor_hub_commit_seconds_count", ())] >= 1


async def test_push_latency_is_observed(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """A command pushed to a connected agent is counted in the push latency histogram."""
    key = await viewer_key(api)
    ws = await connect_agent(hub, "d1")
    try:
        made = await api.post("/devices/d1/commands", json={"command": "ping"})
        assert made.status_code in (200, 201), made.text
        assert (await next_frame(ws, "command"))["command"] == "ping"

        async def pushed() -> Scrape | None:  # delivered() runs once the hub's send returns
            got = await scrape(hub, key)
            return got if got[("monitor_hub_command_push_seconds_count", ())] else None

        got = await eventually(pushed, within=2, what="the push counted")
        assert got[("monitor_hub_command_push_seconds_count", ())] == 1
        assert 0 < got[("monitor_hub_command_push_seconds_sum", ())] < t(5)
    finally:
        await ws.close()


async def test_metrics_needs_credentials(hub: RunningHub) -> None:
    """Without a credential /metrics answers 401."""
    async with httpx.AsyncClient(base_url=hub.http_url) as client:
        assert (await client.get("/metrics")).status_code == 401


async def test_grafana_dashboard_uses_exposed_metrics(hub: RunningHub, api: httpx.AsyncClient) -> None:
    """Every metric docs/grafana-dashboard.json queries is one the hub exposes."""
    key = await viewer_key(api)
    assert (
        await api.post("/ingest", json={"device_id": "d1", "cpu": 1.0, "ram": 2.0, "disk": 3.0})
    ).status_code == 200
    exposed = {name for name, _ in await scrape(hub, key)}
    dashboard = json.loads((Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"monitor_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 8
    assert queried <= exposed, queried - exposed
