"""Path and query parameters, validated with readable 422s."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from protocol import FrameValidationError, to_epoch
from protocol.codec import convert
from protocol.frames import DeviceId


def device_id(request: Request) -> str:
    raw = request.path_params["device_id"]
    try:
        return convert(raw, DeviceId)
    except FrameValidationError as exc:
        raise HTTPException(422, f"invalid device id: {exc}") from None


def command_id(request: Request) -> int:
    value: int = request.path_params["command_id"]
    return value


def time_param(request: Request, name: str) -> float | None:
    """``since``/``until`` as ISO-8601 or epoch seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return to_epoch(float(raw)) if _is_number(raw) else to_epoch(raw)
    except ValueError:
        raise HTTPException(422, f"{name} must be ISO-8601 or epoch seconds, got {raw!r}") from None


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise HTTPException(422, f"{name} must be an integer from 1 to {maximum}, got {raw!r}")
    return int(raw)


def float_param(request: Request, name: str) -> float | None:
    """A positive number of seconds, or None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not _is_number(raw) or not 0 < float(raw) < 1e9:
        raise HTTPException(422, f"{name} must be a positive number of seconds, got {raw!r}")
    return float(raw)


def _is_number(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True
