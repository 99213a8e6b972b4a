"""``/ui``: the page or the login form, login by name and password, token or one-time link, logout."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from monitor_server.http import JSONResponse, hub_of, read_body
from monitor_server.identity.accounts import Login, LoginThrottled
from monitor_server.identity.audit import AuditAction
from monitor_server.identity.authn import LEGACY_SESSION_USER
from monitor_server.throttle import client_address
from monitor_server.ui.dashboard import dashboard_of
from monitor_server.ui.pages import SECURITY_HEADERS, dashboard_page, favicon_svg
from monitor_server.ui.pages import login_page as _login_page
from monitor_server.ui.session import COOKIE_NAME, clear_session_cookie, set_session_cookie
from monitor_server.ui.ui_ws import ui_socket
from protocol.errors import Unauthenticated

MAX_FORM_BYTES = 4096


async def root(request: Request) -> Response:
    """``GET /``: the hub's address as the banner prints it leads to the dashboard."""
    return RedirectResponse("/ui", 307)


async def favicon(request: Request) -> Response:
    """``GET /favicon.ico``: the hub's icon (SVG), so browsers asking for it get one."""
    return Response(favicon_svg(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


async def home(request: Request) -> Response:
    if await dashboard_of(request).principal(request) is not None:
        return dashboard_page()
    page = login_page(request)
    if COOKIE_NAME in request.cookies:
        # A cookie whose session ended (logout, a revoked user, or the page reloading on its
        # socket's 4401 before the logout's own answer arrived) is useless: drop it.
        clear_session_cookie(page, request, hub_of(request).settings)
    return page


async def session_state(request: Request) -> Response:
    """Lets the page tell "logged out" from "hub unreachable", and shows who is logged in (role)."""
    principal = await dashboard_of(request).principal(request)
    body = {"logged_in": principal is not None, "principal": principal.to_json() if principal else None}
    return JSONResponse(body, 200 if principal else 401, headers={"Cache-Control": "no-store"})


async def login_form(request: Request) -> Response:
    """POST of the login form: ``name`` and ``password``, or the legacy ``token``."""
    if request.headers.get("origin") and not dashboard_of(request).origin_ok(request):
        return login_page(request, "This login form was posted from another site.", 403)
    hub, client = hub_of(request), client_address(request)
    throttle = hub.throttle  # shared with the API and the sockets: one count per address
    if wait := throttle.retry_after(client, hub.settings.login_max_failures):
        return _throttled(request, wait)
    body = await read_body(request, MAX_FORM_BYTES)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    accounts = hub.identity.accounts
    try:
        if "name" in form:
            login = await accounts.login(form["name"].strip(), form.get("password", ""), client)
        elif hub.identity.authn.legacy_token is not None and hub.token.matches(form.get("token", "").strip()):
            login = await accounts.open_session(LEGACY_SESSION_USER)
            await _audit_login(request, login, {"via": "token"})
        else:
            raise Unauthenticated("wrong token")
    except LoginThrottled as exc:
        return _throttled(request, exc.retry_after)
    except Unauthenticated:
        throttle.failed(client)
        if "name" not in form:  # a wrong name or password is audited by accounts.login
            via = {"via": "token"}
            await hub.identity.audit.record(AuditAction.LOGIN_FAILED, "unknown", "legacy-token", client, via)
        return login_page(request, "Wrong name or password." if "name" in form else "Wrong token.", 401)
    throttle.succeeded(client)
    return _logged_in(request, login)


async def login_link(request: Request) -> Response:
    """GET of a one-time link: spend the code, set the cookie, and drop the code from the URL."""
    code = request.query_params.get("otp")
    if code is None:
        return RedirectResponse("/ui", 303)
    user = dashboard_of(request).codes.spend(code)
    if user is None:
        return login_page(request, "This login link has expired or was already used. Log in below.", 401)
    try:
        login = await hub_of(request).identity.accounts.open_session(user)
    except Unauthenticated:
        why = "its account no longer exists" if user else "the legacy token is off (MONITOR_LEGACY_TOKEN=off)"
        return login_page(request, f"This login link cannot log in: {why}.", 401)
    await _audit_login(request, login, {"via": "login link"})
    return _logged_in(request, login)


async def logout(request: Request) -> Response:
    dashboard = dashboard_of(request)
    if request.headers.get("origin") and not dashboard.origin_ok(request):
        return login_page(request, "This logout was posted from another site.", 403)
    hub = hub_of(request)
    await hub.identity.accounts.logout(request.cookies.get(COOKIE_NAME), client_address(request))
    response = RedirectResponse("/ui", 303, headers=SECURITY_HEADERS)
    clear_session_cookie(response, request, hub.settings)
    return response


async def _audit_login(request: Request, login: Login, via: dict[str, str]) -> None:
    """Logins by name are audited by ``accounts.login``; by the token form and links, here."""
    audit, principal = hub_of(request).identity.audit, login.principal
    await audit.record(AuditAction.LOGIN, principal, principal.name, client_address(request), via)


def _logged_in(request: Request, login: Login) -> Response:
    response = RedirectResponse("/ui", 303, headers=SECURITY_HEADERS)
    set_session_cookie(response, request, hub_of(request).settings, login)
    return response


def login_page(request: Request, message: str = "", status_code: int = 200) -> Response:
    """The login form; its hub-token part only while the legacy token is accepted."""
    legacy = hub_of(request).identity.authn.legacy_token is not None
    return _login_page(message, status_code, legacy)


def _throttled(request: Request, wait: float) -> Response:
    response = login_page(request, f"Too many failed logins. Try again in {wait:.0f} s.", 429)
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/", root),
        Route("/favicon.ico", favicon),
        Route("/ui", home),
        Route("/ui/", home),
        Route("/ui/login", login_form, methods=["POST"]),
        Route("/ui/login", login_link),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/session", session_state),
        Mount("/ui/static", StaticFiles(packages=[("monitor_server", "static")]), name="ui-static"),
        WebSocketRoute("/ws/ui", ui_socket),
    ]
