"""Dashboards are told each alert transition (DESIGN §11): ``alert`` events on ``/ws/ui``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.agents import ui_feed
from tests.hubs import RunningHub
from tests.timing import t

RULE = {"name": "cpu busy", "kind": "threshold", "metric": "cpu", "op": ">", "value": 50, "for": 0}


async def _next_alert(feed: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(t(5)):
        while True:
            frame = json.loads(await feed.recv())
            for event in frame.get("events", []):
                if event.get("type") == "alert":
                    return dict(event)


async def test_a_rule_firing_and_resolving_is_told_to_dashboards(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    """cpu > 50 for 0: the sample over it sends ``alert`` firing, one under it ``alert`` ok, both
    with the rule's name and severity, the device, the value and the time since."""
    rule = (await api.post("/alert-rules", json=RULE)).json()
    async with ui_feed(hub) as (feed, _snapshot):
        sample = {"device_id": "web-1", "cpu": 75, "status": "ok"}
        assert (await api.post("/ingest", json=sample)).status_code == 200
        firing = await _next_alert(feed)
        assert firing["rule_id"] == rule["id"] and firing["rule"] == "cpu busy"
        assert (firing["device_id"], firing["state"], firing["value"]) == ("web-1", "firing", 75)
        assert firing["severity"] == rule["severity"] and firing["silenced"] is False
        assert firing["since"].endswith("Z") and firing["fired_at"]
        listed = (await api.get("/alerts")).json()["alerts"]
        assert [{**a, "type": "alert"} for a in listed] == [firing]
        assert (await api.post("/ingest", json={**sample, "cpu": 10})).status_code == 200
        resolved = await _next_alert(feed)
        assert (resolved["device_id"], resolved["state"], resolved["rule_id"]) == ("web-1", "ok", rule["id"])
