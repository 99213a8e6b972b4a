"""Authorization: which principal may call which route (DESIGN §10).

``requires(role)`` wraps a REST endpoint: 429 while the client address is locked out for
wrong credentials, 401 without a valid credential, 403 when the role is too low. Users and API
keys pass with at least ``role`` (viewer: reads, operator: commands, admin: identity and audit);
the legacy token is admin. A device credential passes only routes marked ``device=True`` and
only for its own device: the ``{device_id}`` in the path, or, where the device is named in the
body (``/ingest``), what the endpoint checks with ``own_device``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from monitor_server.auth import presented_token
from monitor_server.http import Endpoint, JSONResponse, hub_of
from monitor_server.identity.principals import Principal, PrincipalKind, Role
from monitor_server.throttle import client_address, too_many_attempts
from protocol.errors import Forbidden

UNAUTHENTICATED = "missing or invalid token (X-Auth-Token or Authorization: Bearer) or session cookie"


def principal_of(request: HTTPConnection) -> Principal:
    """The principal ``requires`` admitted (only inside an endpoint it wraps)."""
    principal: Principal = request.state.principal
    return principal


def requires(role: Role, *, device: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Admit principals with at least ``role``; with ``device``, also a device for its own device."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            principal, refusal = await admit(request)
            if refusal is not None:
                return refusal
            assert principal is not None
            if (detail := refused(principal, role, device, request.path_params.get("device_id"))) is not None:
                return JSONResponse({"detail": detail}, 403)
            request.state.principal = principal
            return await endpoint(request)

        return guarded

    return decorate


async def admit(conn: HTTPConnection) -> tuple[Principal | None, Response | None]:
    """Authenticate a request or upgrade: ``(principal, None)`` or ``(None, a 429 or 401 answer)``.

    Wrong credentials are counted per client address; past the limit even a right one gets 429
    (no oracle for a guesser). A stale session cookie is not counted (it cannot be guessed).
    """
    hub, client = hub_of(conn), client_address(conn)
    if wait := hub.throttle.retry_after(client, hub.settings.auth_max_failures):
        return None, too_many_attempts(wait)
    principal = await hub.identity.authn.authenticate(conn)
    if principal is None:
        if presented_token(conn.headers) is not None:  # a guess; no token at all is not
            hub.throttle.failed(client)
        return None, JSONResponse({"detail": UNAUTHENTICATED}, 401)
    return principal, None


def refused(principal: Principal, role: Role, device: bool, path_device: str | None) -> str | None:
    """Why ``principal`` may not call a route needing ``role`` (None: it may)."""
    if principal.kind is PrincipalKind.DEVICE:
        if not device:
            return "a device credential may only send its own device's data and take its own commands"
        if path_device is not None and path_device != principal.device_id:
            return f"this credential belongs to device {principal.device_id!r}, not {path_device!r}"
        return None
    if not principal.may(role):
        have = principal.role.value if principal.role else "none"
        return f"this needs role {role.value} or above; {principal.name!r} has {have}"
    return None


def own_device(principal: Principal, device_id: str) -> None:
    """Forbidden unless ``principal`` may act as ``device_id`` (any non-device principal may)."""
    if principal.kind is PrincipalKind.DEVICE and principal.device_id != device_id:
        raise Forbidden(f"this credential belongs to device {principal.device_id!r}, not {device_id!r}")
