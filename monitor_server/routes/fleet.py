"""Organising a fleet: a display name and tags per device, and one command for many devices.

A bulk command is one ordinary command per device (each delivered, acknowledged, expired or
cancelled on its own, with the guarantees of a single one) sharing the Idempotency-Key
``bulk:<id>``: sending the same bulk request again with the same key queues nothing twice,
and ``GET /commands/bulk/{id}`` reads the parts back across devices.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.events import DeviceUpdated
from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.hub import Hub
from monitor_server.identity.audit import AuditAction
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.commands import queue_command
from monitor_server.routes.params import device_id, int_param
from monitor_server.store import Command, Device
from monitor_server.throttle import client_address
from protocol import CommandState
from protocol.rest import MAX_BULK, BulkCommandCreate, DeviceUpdate

BULK_PREFIX = "bulk:"
_BULK_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OUTCOMES = ("pending", "delivered", "acked", "failed", "expired", "cancelled")


@requires(Role.OPERATOR)
async def update_device(request: Request) -> Response:
    """``PATCH /devices/{id}``: set or clear the display name, replace the operators' tags."""
    ident = device_id(request)
    body = await read_model(request, DeviceUpdate)
    given = body.model_fields_set
    if not given:
        raise HTTPException(422, "give name, tags or both")
    hub = hub_of(request)
    device = await hub.store.get_device(ident)
    if device is not None and "name" in given:
        device = await hub.store.rename_device(ident, (body.name or "").strip() or None)
    if device is not None and "tags" in given:
        device = await hub.store.set_device_tags(ident, body.tags or [])
    if device is None:
        raise HTTPException(404, f"unknown device {ident!r}")
    changed: dict[str, Any] = {key: getattr(device, key) for key in ("name", "tags") if key in given}
    await hub.identity.audit.record(
        AuditAction.DEVICE_UPDATED, principal_of(request), ident, client_address(request), changed
    )
    hub.bus.publish(DeviceUpdated(device))
    return JSONResponse({"ok": True, **hub.sessions.with_duplicate(device.to_json())})


def with_tag(devices: list[Device], tag: str | None) -> list[Device]:
    """The devices carrying ``tag`` (set by an operator or reported by the agent); all if None."""
    return devices if tag is None else [d for d in devices if tag in d.tags or tag in d.agent_tags]


@requires(Role.OPERATOR)
async def enqueue_bulk(request: Request) -> Response:
    """``POST /commands/bulk``: queue the command on each listed device, or each device with a tag."""
    body = await read_model(request, BulkCommandCreate)
    bulk_id = _bulk_id(request)
    hub = hub_of(request)
    targets = await _targets(hub, body)
    for ident in targets:  # the same body for each: a 413 or 422 comes before the first is queued
        await queue_command(hub, ident, body, BULK_PREFIX + bulk_id)
    detail = {"bulk_id": bulk_id, "command": body.command, "devices": len(targets)}
    await hub.identity.audit.record(
        AuditAction.BULK_COMMAND_ENQUEUED, principal_of(request), None, client_address(request), detail
    )
    return JSONResponse({"ok": True, **await _summary(hub, bulk_id)})


@requires(Role.VIEWER)
async def bulk_status(request: Request) -> Response:
    """``GET /commands/bulk/{bulk_id}``: the counts per outcome and the devices' commands.

    ``limit`` keeps that many commands, the ones that need a look first (failed, then still open,
    then the others), so a dashboard following 10,000 devices does not fetch them all each time.
    """
    bulk_id = request.path_params["bulk_id"]
    if not _BULK_ID.match(bulk_id):
        raise HTTPException(422, "invalid bulk id")
    limit = int_param(request, "limit", MAX_BULK, MAX_BULK)
    summary = await _summary(hub_of(request), bulk_id, limit)
    if not summary["total"]:
        raise HTTPException(404, f"no bulk command {bulk_id!r}")
    return JSONResponse(summary)


def _bulk_id(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if key is None:
        return uuid.uuid4().hex
    if not _BULK_ID.match(key):
        raise HTTPException(422, "Idempotency-Key of a bulk command: 1-128 of letters, digits and ._:-")
    return key


async def _targets(hub: Hub, body: BulkCommandCreate) -> list[str]:
    if body.devices is not None:
        return list(dict.fromkeys(body.devices))  # each device once, in the order given
    tagged = with_tag(await hub.store.list_devices(), body.tag)
    if not tagged:
        raise HTTPException(422, f"no device has the tag {body.tag!r}")
    return [d.device_id for d in tagged]


def outcome(command: Command) -> str:
    """``acked`` and ``failed`` split acknowledged commands by their result; else the state."""
    if command.state is CommandState.ACKED:
        return "acked" if command.success else "failed"
    return command.state.value


# Which parts a limited answer shows first: what needs a look, then what is still moving.
_FIRST = {"failed": 0, "expired": 1, "pending": 2, "delivered": 2, "cancelled": 3, "acked": 4}


async def _summary(hub: Hub, bulk_id: str, limit: int = MAX_BULK) -> dict[str, Any]:
    parts = await hub.store.commands_with_key(BULK_PREFIX + bulk_id)
    counts = Counter(outcome(c) for c in parts)
    shown = parts if limit >= len(parts) else sorted(parts, key=lambda c: _FIRST[outcome(c)])[:limit]
    return {
        "id": bulk_id,
        "command": parts[0].command if parts else None,
        "total": len(parts),
        "counts": {name: counts.get(name, 0) for name in OUTCOMES},
        "commands": [c.to_json() for c in shown],
        "truncated": len(shown) < len(parts),
    }
