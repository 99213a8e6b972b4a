"""Time on the wire: ISO-8601 UTC strings out, ISO-8601 or epoch seconds in."""

from __future__ import annotations

from datetime import UTC, datetime


def to_iso(epoch: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with a ``Z`` suffix."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def to_epoch(value: float | int | str | datetime) -> float:
    """Accept epoch seconds, an ISO-8601 string or a datetime; naive times are UTC."""
    if isinstance(value, int | float):
        return float(value)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# Sample times must be representable and plausible: 1970 to 2100.
EARLIEST, LATEST = 0.0, 4_102_444_800.0


def check_timestamp(value: float | int | str) -> float | int | str:
    """Return ``value`` unchanged if it is a time between 1970 and 2100, else raise ValueError."""
    try:
        epoch = to_epoch(value)
    except (ValueError, OverflowError, TypeError):
        raise ValueError("expected ISO-8601 or epoch seconds") from None
    if not EARLIEST <= epoch <= LATEST:
        raise ValueError("expected a time between 1970 and 2100")
    return value
