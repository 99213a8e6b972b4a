"""Command endpoints: the seed's enqueue/next/ack, plus list, detail and cancel."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from monitor_server.commands import AlreadyExpired, CommandTooLarge, Enqueued
from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.hub import Hub
from monitor_server.identity.audit import AuditAction
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.params import command_id, device_id, int_param
from monitor_server.throttle import client_address
from protocol import CommandAckBody, CommandCreate, to_iso


@requires(Role.OPERATOR)
async def enqueue(request: Request) -> Response:
    ident = device_id(request)
    body = await read_model(request, CommandCreate)
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > 200:
        raise HTTPException(422, "Idempotency-Key must be at most 200 characters")
    queued = await queue_command(hub_of(request), ident, body, key)
    if queued.created:
        detail = {"command_id": queued.command.id, "command": body.command}
        await _audit(request, AuditAction.COMMAND_ENQUEUED, ident, detail)
    return JSONResponse({"ok": True, **queued.to_json()})


async def queue_command(hub: Hub, ident: str, body: CommandCreate, key: str | None) -> Enqueued:
    """Queue (and push) one command with the hub's limits; 413 if it could never reach the agent."""
    try:
        return await hub.commands.enqueue(
            ident,
            body.command,
            body.args,
            key,
            max_frame_bytes=hub.settings.max_frame_bytes,
            ttl=body.ttl,
            expires_at=body.expires_epoch(),
            unseen_ttl=hub.settings.unseen_command_ttl,
        )
    except CommandTooLarge as exc:  # it could never be delivered: refused now, not jammed later
        raise HTTPException(413, str(exc)) from None
    except AlreadyExpired as exc:
        raise HTTPException(422, str(exc)) from None


@requires(Role.OPERATOR, device=True)
async def next_command(request: Request) -> Response:
    command = await hub_of(request).commands.next_for(device_id(request))
    if command is None:
        return JSONResponse(None)
    return JSONResponse(
        {
            "id": command.id,
            "command": command.command,
            "args": command.args,
            "created_at": to_iso(command.created_at),
        }
    )


@requires(Role.OPERATOR, device=True)
async def ack(request: Request) -> Response:
    ident, cid = device_id(request), command_id(request)
    body = await read_model(request, CommandAckBody)
    result = body.model_extra or None
    command = await hub_of(request).commands.ack(ident, cid, body.success, body.message, result)
    acked_at = to_iso(command.acked_at) if command.acked_at is not None else None
    return JSONResponse({"ok": True, "ack_at": acked_at, "status": command.state.value})


@requires(Role.VIEWER)
async def list_commands(request: Request) -> Response:
    ident = device_id(request)
    commands = await hub_of(request).commands.history(ident, int_param(request, "limit", 100, 1000))
    return JSONResponse({"device_id": ident, "commands": [c.to_json() for c in commands]})


@requires(Role.VIEWER)
async def command_detail(request: Request) -> Response:
    ident, cid = device_id(request), command_id(request)
    command = await hub_of(request).commands.get(ident, cid)
    if command is None:
        raise HTTPException(404, f"command {cid} does not exist for device {ident!r}")
    return JSONResponse(command.to_json())


@requires(Role.OPERATOR)
async def cancel(request: Request) -> Response:
    ident, cid = device_id(request), command_id(request)
    command = await hub_of(request).commands.cancel(ident, cid)
    detail = {"command_id": cid, "command": command.command}
    await _audit(request, AuditAction.COMMAND_CANCELLED, ident, detail)
    return JSONResponse({"ok": True, **command.to_json()})


async def _audit(request: Request, action: AuditAction, device: str, detail: dict[str, object]) -> None:
    audit = hub_of(request).identity.audit
    await audit.record(action, principal_of(request), device, client_address(request), detail)
