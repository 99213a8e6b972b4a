"""``/health`` and the original agent's ``POST /ingest``."""

from __future__ import annotations

import asyncio
import time
from functools import partial

from starlette.requests import Request
from starlette.responses import Response

from monitor_server import __version__
from monitor_server.events import DeviceDetails
from monitor_server.http import JSONResponse, hub_of, read_ingest, unavailable
from monitor_server.identity.authz import own_device, principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.ingest import sample_from
from protocol import to_iso


async def health(request: Request) -> Response:
    """200 while the hub can store; 503 (``"ok": false`` and the reason) while its database fails."""
    hub = hub_of(request)
    failure = hub.writer.failure()
    body = {
        "ok": failure is None,
        "version": __version__,
        "agents_connected": len(hub.sessions),
        "devices_online": hub.presence.online_count(),
        "store": "ok" if failure is None else f"failing: {failure}",
    }
    return JSONResponse(body, 200 if failure is None else 503)


@requires(Role.OPERATOR, device=True)
async def ingest(request: Request) -> Response:
    hub = hub_of(request)
    device_id, payload, extra = await read_ingest(request)
    own_device(principal_of(request), device_id)  # a device credential sends only its own samples
    now = time.time()
    sample = sample_from(device_id, payload, now, extra)
    if (failure := hub.writer.failure()) is not None:
        return unavailable(f"the database is failing ({failure}); retry later")
    hub.publish_sample(sample)
    details = DeviceDetails(hostname=payload.get("hostname"), agent_version=payload.get("agent_version"))
    try:
        async with asyncio.timeout(hub.settings.ingest_wait):
            await hub.presence.http_ingest(device_id, partial(hub.writer.submit, sample), details)
    except TimeoutError:  # stored later if the database recovers; the client may retry
        return unavailable(f"not stored within {hub.settings.ingest_wait:g} s; retry later")
    return JSONResponse({"ok": True, "ts_utc": to_iso(now)})
