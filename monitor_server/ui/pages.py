"""The dashboard's two HTML documents, read once from the package and served with strict headers."""

from __future__ import annotations

import html
import re
from functools import cache
from importlib import resources

from starlette.responses import HTMLResponse

# Everything the page loads comes from the hub itself: no CDN, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Nothing leaves for other sites (a login code in a URL must not leak); "no-referrer" would
    # also make Chromium send "Origin: null" on our own form posts, defeating the Origin check.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@cache
def _document(name: str) -> str:
    return resources.files("monitor_server").joinpath("static", name).read_text("utf-8")


@cache
def favicon_svg() -> bytes:
    """The icon served at ``/favicon.ico``, read once from the package."""
    return resources.files("monitor_server").joinpath("static", "favicon.svg").read_bytes()


def dashboard_page() -> HTMLResponse:
    return HTMLResponse(_document("index.html"), headers=SECURITY_HEADERS)


def login_page(message: str = "", status_code: int = 200, legacy: bool = True) -> HTMLResponse:
    """The login form (name and password), with the hub token form unless ``legacy`` is off."""
    notice = f'<p class="notice" role="alert">{html.escape(message)}</p>' if message else ""
    body = _document("login.html").replace("<!--message-->", notice)
    if not legacy:
        body = re.sub(r"<!--legacy-->.*<!--/legacy-->", "", body, flags=re.DOTALL)
    return HTMLResponse(body, status_code, headers=SECURITY_HEADERS)
