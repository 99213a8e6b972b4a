"""``/ui``: the page or the login form, login by token or one-time link, logout, static assets."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from monitor_server.http import JSONResponse, hub_of, read_body
from monitor_server.throttle import client_address
from monitor_server.ui.dashboard import dashboard_of
from monitor_server.ui.pages import SECURITY_HEADERS, dashboard_page, login_page
from monitor_server.ui.session import COOKIE_NAME
from monitor_server.ui.ui_ws import ui_socket

MAX_FORM_BYTES = 4096


async def home(request: Request) -> Response:
    if dashboard_of(request).has_session(request):
        return dashboard_page()
    return login_page()


async def session_state(request: Request) -> Response:
    """Lets the page tell "logged out" from "hub unreachable" when its socket is refused."""
    ok = dashboard_of(request).has_session(request)
    return JSONResponse({"logged_in": ok}, 200 if ok else 401, headers={"Cache-Control": "no-store"})


async def login_form(request: Request) -> Response:
    """POST of the login form: the token, compared in constant time."""
    if request.headers.get("origin") and not dashboard_of(request).origin_ok(request):
        return login_page("This login form was posted from another site.", 403)
    hub, client = hub_of(request), client_address(request)
    throttle = hub.throttle  # shared with the API and the sockets: one count per address
    if wait := throttle.retry_after(client, hub.settings.login_max_failures):
        response = login_page(f"Too many wrong tokens. Try again in {wait:.0f} s.", 429)
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    body = await read_body(request, MAX_FORM_BYTES)
    token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
    if not hub.token.matches(token.strip()):
        throttle.failed(client)
        return login_page("Wrong token.", 401)
    throttle.succeeded(client)
    return _logged_in(request)


async def login_link(request: Request) -> Response:
    """GET of a one-time link: spend the code, set the cookie, and drop the code from the URL."""
    code = request.query_params.get("otp")
    if code is None:
        return RedirectResponse("/ui", 303)
    if not dashboard_of(request).codes.redeem(code):
        return login_page("This login link has expired or was already used. Log in with the token.", 401)
    return _logged_in(request)


async def logout(request: Request) -> Response:
    dashboard = dashboard_of(request)
    if request.headers.get("origin") and not dashboard.origin_ok(request):
        return login_page("This logout was posted from another site.", 403)
    dashboard.signer.revoke(request.cookies.get(COOKIE_NAME))
    response = RedirectResponse("/ui", 303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE_NAME, path="/", secure=_tls(request), httponly=True, samesite="strict")
    return response


def _logged_in(request: Request) -> Response:
    dashboard = dashboard_of(request)
    response = RedirectResponse("/ui", 303, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE_NAME,
        dashboard.signer.issue(),
        max_age=int(dashboard.signer.lifetime),
        path="/",
        secure=_tls(request),
        httponly=True,
        samesite="strict",
    )
    return response


def _tls(request: Request) -> bool:
    """Secure cookies over HTTPS, including behind a proxy known only from MONITOR_UI_ORIGINS."""
    origins = dashboard_of(request).settings.ui_origins
    return request.url.scheme == "https" or any(o.startswith("https://") for o in origins)


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/ui", home),
        Route("/ui/", home),
        Route("/ui/login", login_form, methods=["POST"]),
        Route("/ui/login", login_link),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/session", session_state),
        Mount("/ui/static", StaticFiles(packages=[("monitor_server", "static")]), name="ui-static"),
        WebSocketRoute("/ws/ui", ui_socket),
    ]
