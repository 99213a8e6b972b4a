"""Devices and what the hub knows of them: list, detail, stored metrics, presence history."""

from __future__ import annotations

import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.fleet import with_tag
from monitor_server.routes.params import device_id, float_param, int_param, time_param
from monitor_server.store.records import tier_for, tier_step
from monitor_server.throttle import client_address


@requires(Role.VIEWER)
async def list_devices(request: Request) -> Response:
    hub = hub_of(request)
    tag = request.query_params.get("tag") or None
    devices = with_tag(await hub.store.list_devices(), tag)
    return JSONResponse([hub.sessions.with_duplicate(d.to_json()) for d in devices])


@requires(Role.VIEWER)
async def device_detail(request: Request) -> Response:
    hub = hub_of(request)
    found = await hub.store.get_device(device_id(request))
    if found is None:
        raise HTTPException(404, f"unknown device {request.path_params['device_id']!r}")
    latest = await hub.store.latest_sample(found.device_id)
    body = found.to_json()
    body["latest_sample"] = latest.to_json() if latest else None
    body["connected"] = found.device_id in hub.sessions
    # What its agent announced in its last hello (kept while it is away); None: never over WebSocket.
    body["commands"] = None if found.commands is None else list(found.commands)
    return JSONResponse(hub.sessions.with_duplicate(body))


@requires(Role.ADMIN)
async def remove_device(request: Request) -> Response:
    """Delete the device with its history (samples, presence, commands) and its credential."""
    ident = device_id(request)
    removed = await hub_of(request).remove_device(principal_of(request), ident, client_address(request))
    return JSONResponse({"ok": True, **removed.to_json()})


@requires(Role.VIEWER)
async def device_metrics(request: Request) -> Response:
    """Stored samples (or, with ``step``, aggregates per bucket), the newest ``limit``, oldest first.

    A step of 60 s or more is answered from the one-minute tier, 3600 s or more from the one-hour
    tier, and is then rounded down to a whole number of that tier's rows (the ``step`` answered).
    """
    ident = device_id(request)
    since, until = time_param(request, "since"), time_param(request, "until")
    limit = int_param(request, "limit", 1000, 10000)
    step = float_param(request, "step")
    store = hub_of(request).store
    # One more than asked: if it comes back, the range holds older samples than this page.
    if step is None:
        samples = await store.query_samples(ident, since, until, limit + 1)
    else:
        step = tier_step(step)
        samples = await store.query_buckets(ident, since, until, step, limit + 1)
    truncated = len(samples) > limit
    page = samples[1:] if truncated else samples
    tier = tier_for(step)
    body = {
        "device_id": ident,
        "step": step,
        "tier": "raw" if tier is None else tier.name,
        "samples": [s.to_json() for s in page],
        "truncated": truncated,
        "next_until": _older_page(page[0].ts, step) if truncated else None,
    }
    return JSONResponse(body)


def _older_page(oldest: float, step: float | None) -> float:
    """The ``until`` that asks for what precedes a page starting at ``oldest`` (``until`` is inclusive).

    Raw samples have distinct times per device; a bucket spans ``[k*step, (k+1)*step)``, so the
    next page ends just before the oldest bucket's start and holds no part of it.
    """
    start = oldest if step is None else math.floor(oldest / step) * step
    return math.nextafter(start, -math.inf)


@requires(Role.VIEWER)
async def device_events(request: Request) -> Response:
    ident = device_id(request)
    events = await hub_of(request).store.presence_events(ident, int_param(request, "limit", 100, 1000))
    return JSONResponse({"device_id": ident, "events": [e.to_json() for e in events]})
