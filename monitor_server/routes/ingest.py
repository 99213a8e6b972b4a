"""``/health`` and the original agent's ``POST /ingest``."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from monitor_server import __version__
from monitor_server.events import DeviceDetails, SampleEvent
from monitor_server.http import JSONResponse, hub_of, protected, read_ingest
from monitor_server.ingest import sample_from
from protocol import to_iso


async def health(request: Request) -> Response:
    hub = hub_of(request)
    return JSONResponse(
        {
            "ok": True,
            "version": __version__,
            "agents_connected": len(hub.sessions),
            "devices_online": hub.presence.online_count(),
        }
    )


@protected
async def ingest(request: Request) -> Response:
    hub = hub_of(request)
    device_id, payload, extra = await read_ingest(request)
    now = time.time()
    sample = sample_from(device_id, payload, now, extra)
    hub.bus.publish(SampleEvent.of(sample))
    await hub.writer.submit(sample)
    details = DeviceDetails(hostname=payload.hostname, agent_version=payload.agent_version)
    await hub.presence.http_seen(device_id, details)
    return JSONResponse({"ok": True, "ts_utc": to_iso(now)})
