"""Who may call: the shared token in ``X-Auth-Token`` or ``Authorization: Bearer``."""

from __future__ import annotations

from starlette.datastructures import Headers


def presented_token(headers: Headers) -> str | None:
    token = headers.get("x-auth-token")
    if token:
        return token
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
