"""Users, logins and API keys over REST (DESIGN §10): admins manage, anyone may log in and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from monitor_server.http import JSONResponse, hub_of, read_model
from monitor_server.identity.accounts import LoginThrottled
from monitor_server.identity.authz import principal_of, requires
from monitor_server.identity.principals import Role
from monitor_server.throttle import client_address, too_many_attempts
from monitor_server.ui.origins import origin_allowed
from monitor_server.ui.session import COOKIE_NAME, clear_session_cookie, set_session_cookie
from protocol import to_iso
from protocol.errors import Forbidden, Unauthenticated
from protocol.identity import ApiKeyCreate, LoginRequest, UserCreate, UserUpdate


@requires(Role.ADMIN)
async def create_user(request: Request) -> Response:
    body = await read_model(request, UserCreate)
    accounts = hub_of(request).identity.accounts
    user = await accounts.create_user(
        principal_of(request), body.name, body.password, body.role, client_address(request)
    )
    return JSONResponse(user.to_json(), 201)


@requires(Role.ADMIN)
async def list_users(request: Request) -> Response:
    users = await hub_of(request).identity.accounts.list_users()
    return JSONResponse({"users": [u.to_json() for u in users]})


@requires(Role.ADMIN)
async def update_user(request: Request) -> Response:
    body = await read_model(request, UserUpdate)
    accounts = hub_of(request).identity.accounts
    name = request.path_params["name"]
    user = await accounts.update_user(
        principal_of(request), name, body.password, body.role, client_address(request)
    )
    return JSONResponse(user.to_json())


@requires(Role.ADMIN)
async def delete_user(request: Request) -> Response:
    name = request.path_params["name"]
    await hub_of(request).identity.accounts.delete_user(principal_of(request), name, client_address(request))
    return JSONResponse({"ok": True, "name": name})


async def login(request: Request) -> Response:
    """``{"name", "password"}`` -> the session cookie; 401 wrong, 429 after too many failures."""
    if request.headers.get("origin") and not origin_allowed(request, hub_of(request).settings.ui_origins):
        raise Forbidden("this login was posted from another site")
    hub, client = hub_of(request), client_address(request)
    if wait := hub.throttle.retry_after(client, hub.settings.login_max_failures):
        return too_many_attempts(wait)
    body = await read_model(request, LoginRequest)
    try:
        session = await hub.identity.accounts.login(body.name, body.password, client)
    except LoginThrottled as exc:
        return too_many_attempts(exc.retry_after)
    except Unauthenticated:
        hub.throttle.failed(client)
        raise
    hub.throttle.succeeded(client)
    principal = session.principal
    answer = {"name": principal.name, "role": principal.role, "expires_at": to_iso(session.expires_at)}
    response = JSONResponse(answer, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, hub.settings, session)
    return response


async def logout(request: Request) -> Response:
    """End the cookie's session (stored: it stays ended across restarts) and clear the cookie."""
    hub = hub_of(request)
    if request.headers.get("origin") and not origin_allowed(request, hub.settings.ui_origins):
        raise Forbidden("this logout was posted from another site")
    await hub.identity.accounts.logout(request.cookies.get(COOKIE_NAME), client_address(request))
    response = JSONResponse({"ok": True})
    clear_session_cookie(response, request, hub.settings)
    return response


@requires(Role.VIEWER, device=True)
async def me(request: Request) -> Response:
    """Who the credential belongs to, and its role (the dashboard shows only what it may do)."""
    return JSONResponse(principal_of(request).to_json())


@requires(Role.ADMIN)
async def create_api_key(request: Request) -> Response:
    body = await read_model(request, ApiKeyCreate)
    accounts = hub_of(request).identity.accounts
    key, secret = await accounts.create_api_key(
        principal_of(request), body.name, body.role, body.expires_in, body.owner, client_address(request)
    )
    return JSONResponse({**key.to_json(), "key": secret}, 201, headers={"Cache-Control": "no-store"})


@requires(Role.ADMIN)
async def list_api_keys(request: Request) -> Response:
    keys = await hub_of(request).identity.accounts.list_api_keys()
    return JSONResponse({"api_keys": [k.to_json() for k in keys]})


@requires(Role.ADMIN)
async def delete_api_key(request: Request) -> Response:
    key_id = request.path_params["key_id"]
    accounts = hub_of(request).identity.accounts
    await accounts.delete_api_key(principal_of(request), key_id, client_address(request))
    return JSONResponse({"ok": True, "id": key_id})
