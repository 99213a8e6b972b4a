"""Path and query parameters, validated with readable 422s."""

from __future__ import annotations

import math

from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request

from protocol import FrameValidationError, to_epoch
from protocol.codec import convert
from protocol.frames import DeviceId


def device_id(request: Request) -> str:
    raw = request.path_params["device_id"]
    try:
        checked: str = convert(raw, DeviceId)
        return checked
    except FrameValidationError as exc:
        raise HTTPException(422, f"invalid device id: {exc}") from None


INT64_MAX = 2**63 - 1


class Id64Convertor(Convertor[int]):
    """``{name:id64}`` in a route: digits read as an int, past int64 as ``INT64_MAX + 1``.

    Starlette's ``int`` convertor calls ``int()`` on any run of digits, which raises past 4,300
    of them (a 500); no stored id has more than 19 significant digits anyway.
    """

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        digits = value.lstrip("0") or "0"
        return int(digits) if len(digits) <= 19 else INT64_MAX + 1

    def to_string(self, value: int) -> str:
        return str(value)


ID64 = "id64"
register_url_convertor(ID64, Id64Convertor())


def command_id(request: Request) -> int:
    """The path's command id; past SQLite's 64-bit integers no command can have it (404)."""
    value: int = request.path_params["command_id"]
    if not 1 <= value <= INT64_MAX:
        raise HTTPException(404, f"no command has this id (ids are 1 to {INT64_MAX})")
    return value


def time_param(request: Request, name: str) -> float | None:
    """``since``/``until`` as ISO-8601 or epoch seconds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = to_epoch(float(raw)) if _is_number(raw) else to_epoch(raw)
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):  # "nan" and "inf" parse as numbers but are no time
        raise HTTPException(422, f"{name} must be ISO-8601 or epoch seconds, got {raw!r:.40}")
    return value


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = _ascii_int(raw)
    if value is None or not 1 <= value <= maximum:
        raise HTTPException(422, f"{name} must be an integer from 1 to {maximum}, got {raw!r:.40}")
    return value


def _ascii_int(raw: str) -> int | None:
    """Digits 0-9 only (``str.isdigit`` also takes "²" and other scripts' digits), 20 at most."""
    digits = raw.lstrip("0") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(digits) > 20:
        return None
    return int(digits)


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
