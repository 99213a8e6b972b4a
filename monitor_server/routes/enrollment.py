"""Enrollment tokens, ``POST /enroll`` and per-device revoke and reset (DESIGN §10)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.routes.params import device_id
from monitor_server.throttle import client_address, too_many_attempts
from protocol import to_iso
from protocol.errors import Unauthenticated
from protocol.identity import EnrollmentTokenCreate, EnrollRequest

NO_STORE = {"Cache-Control": "no-store"}


@requires(Role.ADMIN)
async def create_token(request: Request) -> Response:
    body = await read_model(request, EnrollmentTokenCreate)
    token, secret = await hub_of(request).identity.enrollment.create_token(
        principal_of(request), body.expires_in, body.max_uses, body.tags, client_address(request)
    )
    return JSONResponse({**token.to_json(), "token": secret}, 201, headers=NO_STORE)


@requires(Role.ADMIN)
async def list_tokens(request: Request) -> Response:
    tokens = await hub_of(request).identity.enrollment.list_tokens()
    return JSONResponse({"enrollment_tokens": [t.to_json() for t in tokens]})


@requires(Role.ADMIN)
async def delete_token(request: Request) -> Response:
    token_id = request.path_params["token_id"]
    enrollment = hub_of(request).identity.enrollment
    await enrollment.delete_token(principal_of(request), token_id, client_address(request))
    return JSONResponse({"ok": True, "id": token_id})


async def enroll(request: Request) -> Response:
    """An enrollment token (no other credential) -> this device's own credential, shown once.

    401 for an unknown, expired, revoked or used-up token (counted like a wrong token: the
    address is throttled); 409 if the device already holds a credential (no takeover).
    """
    hub, client = hub_of(request), client_address(request)
    if wait := hub.throttle.retry_after(client, hub.settings.auth_max_failures):
        return too_many_attempts(wait)
    body = await read_model(request, EnrollRequest)
    try:
        credential, secret = await hub.identity.enrollment.enroll(
            body.token, body.device_id, body.hostname, client
        )
    except Unauthenticated:
        hub.throttle.failed(client)
        raise
    answer = {
        "device_id": credential.device_id,
        "credential": secret,
        "issued_at": to_iso(credential.issued_at),
    }
    return JSONResponse(answer, 201, headers=NO_STORE)


@requires(Role.ADMIN)
async def revoke(request: Request) -> Response:
    """The device's credential stops working now; enrolling the id again needs a reset."""
    ident = device_id(request)
    revoked = await hub_of(request).identity.enrollment.revoke(
        principal_of(request), ident, client_address(request)
    )
    return JSONResponse({"ok": True, **revoked.to_json()})


@requires(Role.ADMIN)
async def reset(request: Request) -> Response:
    """Forget the device's credential (revoked or live) so the id may enroll again."""
    ident = device_id(request)
    enrollment = hub_of(request).identity.enrollment
    had = await enrollment.reset(principal_of(request), ident, client_address(request))
    return JSONResponse({"ok": True, "device_id": ident, "had_credential": had})


@requires(Role.VIEWER)
async def credential_state(request: Request) -> Response:
    """Whether the device has a credential, when it was issued or rotated, whether it is revoked."""
    ident = device_id(request)
    found = await hub_of(request).identity.enrollment.credential(ident)
    return JSONResponse(found.to_json() if found else {"device_id": ident, "credential": None})
